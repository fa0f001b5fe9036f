"""Prefect flows and how they run: ``calls`` (one call's stages, the archive flow and the per-call
task of the Dask/Ray runners), ``runners`` (the worker pools), ``main`` (the main job), ``serve``
(the scheduled flow and its deployments), ``supervisor`` (the local Prefect server and the archive
watcher behind ``speechfin serve``) and ``progress`` (progress bars).  Nothing outside this
package imports Prefect."""
