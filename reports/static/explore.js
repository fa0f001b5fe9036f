// The call page: speaker lanes, transcript and segment table, kept in sync with the audio.
// Every text is inserted with textContent (never as HTML), so a transcript cannot inject markup.
"use strict";
// Charts of the speaker and study pages: a <script type="application/json" class="chart-data"> holds
// {"x": [...], "series": [{"label", "values", "color", "band": [lo, hi]?}], "xTime": bool, "xLabel", "yLabel"}
function drawSeriesCharts() {
  if (typeof uPlot === "undefined") return;
  document.querySelectorAll("script.chart-data").forEach(node => {
    const spec = JSON.parse(node.textContent);
    const box = document.getElementById(node.dataset.target);
    const data = [spec.x], series = [{ label: spec.xLabel }], bands = [];
    spec.series.forEach(s => {
      if (s.band) {
        const lo = data.length;
        data.push(s.band[0], s.band[1]);
        series.push({ label: s.label + " low", stroke: "transparent", points: { show: false } },
                    { label: s.label + " high", stroke: "transparent", points: { show: false } });
        bands.push({ series: [lo + 1, lo], fill: "rgba(31, 78, 140, 0.15)" });
      }
      data.push(s.values);
      series.push({ label: s.label, stroke: s.color || "#1f4e8c", width: 2, spanGaps: true });
    });
    new uPlot({ width: Math.max(400, box.clientWidth || 900), height: 220, series: series, bands: bands,
                scales: { x: { time: !!spec.xTime } }, axes: [{ label: spec.xLabel }, { label: spec.yLabel }] }, data, box);
    box.dataset.drawn = "1";
  });
}
(function () {
  const idEl = document.getElementById("call-id");
  if (!idEl) { drawSeriesCharts(); return; }
  const callId = JSON.parse(idEl.textContent);
  const player = document.getElementById("player");
  const COLORS = ["#1f4e8c", "#d64545", "#2e8b57", "#b8860b", "#6a5acd", "#008b8b", "#8b4513", "#c71585"];

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmt(v, d) { return v === null || v === undefined ? "–" : (v >= 0 ? "+" : "") + v.toFixed(d || 3); }
  function clock(s) { const m = Math.floor(s / 60); return m + ":" + String(Math.floor(s % 60)).padStart(2, "0"); }
  function seek(t) { if (player) { player.currentTime = t; player.play().catch(() => {}); } }

  // the last index i with starts[i] <= t (-1 if none)
  function find(starts, t) {
    let lo = 0, hi = starts.length - 1, ans = -1;
    while (lo <= hi) { const mid = (lo + hi) >> 1; if (starts[mid] <= t) { ans = mid; lo = mid + 1; } else hi = mid - 1; }
    return ans;
  }

  // the emotion trajectory (uPlot, vendored): one x grid of segment midpoints; a series per speaker's
  // smoothed voice tone, the text tone, and the class probabilities (hidden until picked in the legend)
  function drawChart(data, people, duration) {
    const box = document.getElementById("chart");
    if (typeof uPlot === "undefined" || !data.segments.length) return;
    const segs = data.segments.filter(g => g.tone !== null && g.tone !== undefined)
      .map(g => Object.assign({ mid: (g.start_s + g.end_s) / 2 }, g)).sort((a, b) => a.mid - b.mid);
    if (!segs.length) return;
    const x = segs.map(g => g.mid);
    const smooth = {};
    (data.trajectories || []).forEach(r => { smooth[r.segment_id] = r.tone_smooth; });
    const series = [{ label: "time (s)" }], ys = [x];
    const speakers = data.speakers.filter(s => s.role !== "operator");
    speakers.forEach(s => {
      ys.push(segs.map(g => g.speaker === s.speaker ? (smooth[g.segment_id] ?? g.tone) : null));
      series.push({ label: (people[s.speaker] || {}).name + " voice", stroke: (people[s.speaker] || {}).color,
                    width: 2, spanGaps: true });
    });
    ys.push(segs.map(g => g.text_tone ?? null));
    series.push({ label: "text tone", stroke: "#888", dash: [4, 4], width: 1, points: { show: false } });
    const probs = Object.keys(segs[0]).filter(k => k.startsWith("p_"));
    probs.forEach((k, i) => {
      ys.push(segs.map(g => g[k] ?? null));
      series.push({ label: k.slice(2), stroke: COLORS[(i + 3) % COLORS.length], width: 1, show: false });
    });
    const qa = data.segments.filter(g => g.section === "qa").map(g => g.start_s);
    const qaStart = qa.length ? Math.min(...qa) : null;
    const shade = u => {
      if (qaStart === null) return;
      const ctx = u.ctx, left = u.valToPos(qaStart, "x", true), right = u.valToPos(duration, "x", true);
      ctx.save(); ctx.fillStyle = "rgba(240, 160, 60, 0.12)";
      ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height); ctx.restore();
    };
    const width = Math.max(400, box.clientWidth || 900);
    const plot = new uPlot({
      width: width, height: 240, series: series,
      scales: { x: { time: false, range: [0, duration] }, y: { range: [-1, 1] } },
      axes: [{ label: "seconds into the call" }, { label: "tone / probability" }],
      hooks: { drawClear: [shade] },
    }, ys, box);
    plot.over.addEventListener("click", e => {
      const t = plot.posToVal(e.offsetX, "x");
      if (isFinite(t)) seek(Math.max(0, t));
    });
    box.dataset.series = String(series.length - 1);
  }

  fetch("/calls/" + encodeURIComponent(callId) + "/data.json", { credentials: "same-origin" })
    .then(r => r.json()).then(render);

  function render(data) {
    const segs = data.segments, words = data.words;
    const duration = Math.max(data.call.duration_s || 0, ...segs.map(g => g.end_s), 1);
    const people = {};
    data.speakers.forEach((s, i) => { people[s.speaker] = { name: s.name || s.speaker, role: s.role, color: COLORS[i % COLORS.length] }; });

    // speaker lanes: one row per speaker, one block per segment (positions in percent of the call)
    const lanes = document.getElementById("lanes");
    data.speakers.forEach(s => {
      const row = el("div", "lane");
      row.appendChild(el("span", "lane-name", people[s.speaker].name + " (" + s.role + ")"));
      const track = el("div", "lane-track");
      segs.filter(g => g.speaker === s.speaker).forEach(g => {
        const b = el("span", "block");
        b.style.left = (100 * g.start_s / duration) + "%";
        b.style.width = Math.max(0.15, 100 * (g.end_s - g.start_s) / duration) + "%";
        b.style.background = people[s.speaker].color;
        b.title = clock(g.start_s) + " " + (g.text || "");
        if (data.hotspot_threshold !== null && g.attention_top15_share !== null &&
            g.attention_top15_share >= data.hotspot_threshold) {
          b.classList.add("hotspot");        // attention concentrated on a few words: a moment to listen to
          b.title = "attention hotspot · " + b.title;
        }
        b.addEventListener("click", () => seek(g.start_s));
        track.appendChild(b);
      });
      row.appendChild(track);
      lanes.appendChild(row);
    });

    // transcript: one paragraph per segment, one span per word
    const transcript = document.getElementById("transcript");
    const segEls = [], wordEls = [];
    const wordsBySeg = {};
    words.forEach(w => { (wordsBySeg[w.segment_id] = wordsBySeg[w.segment_id] || []).push(w); });
    segs.forEach(g => {
      const p = el("p", "seg " + (g.section || ""));
      p.dataset.segment = g.segment_id;
      const who = el("span", "who", (people[g.speaker] || { name: g.speaker }).name + " " + clock(g.start_s) + " ");
      who.style.color = (people[g.speaker] || {}).color || "#333";
      who.addEventListener("click", () => seek(g.start_s));
      p.appendChild(who);
      (wordsBySeg[g.segment_id] || []).forEach(w => {
        const s = el("span", "w", w.word + " ");
        s.addEventListener("click", () => seek(w.start_s));
        p.appendChild(s);
        wordEls.push({ start: w.start_s, el: s });
      });
      if (!(wordsBySeg[g.segment_id] || []).length) p.appendChild(el("span", "", g.text));
      transcript.appendChild(p);
      segEls.push(p);
    });
    wordEls.sort((a, b) => a.start - b.start);

    // segment table with the emotion columns; a click seeks
    const tbody = document.querySelector("#segments tbody");
    const rows = [];
    segs.forEach(g => {
      const tr = el("tr");
      tr.dataset.segment = g.segment_id;
      const probs = Object.keys(g).filter(k => k.startsWith("p_") && g[k] !== null);
      const top = probs.length ? probs.reduce((a, b) => (g[a] >= g[b] ? a : b)).slice(2) : "";
      [clock(g.start_s), (people[g.speaker] || { name: g.speaker }).name, g.section, fmt(g.tone), fmt(g.text_tone),
       fmt(g.fused_tone), top].forEach((v, i) => tr.appendChild(el("td", i >= 3 && i <= 5 ? "n" : "", v)));
      tr.addEventListener("click", () => seek(g.start_s));
      tbody.appendChild(tr);
      rows.push(tr);
    });

    drawChart(data, people, duration);

    const segStarts = segs.map(g => g.start_s), wordStarts = wordEls.map(w => w.start);
    let curSeg = -1, curWord = -1;
    function sync() {
      const t = player.currentTime;
      const i = find(segStarts, t), j = find(wordStarts, t);
      if (i !== curSeg) {
        if (curSeg >= 0) { segEls[curSeg].classList.remove("current"); rows[curSeg].classList.remove("current"); }
        if (i >= 0) {
          segEls[i].classList.add("current"); rows[i].classList.add("current");
          segEls[i].scrollIntoView({ block: "nearest" }); rows[i].scrollIntoView({ block: "nearest" });
        }
        curSeg = i;
      }
      if (j !== curWord) {
        if (curWord >= 0) wordEls[curWord].el.classList.remove("spoken");
        if (j >= 0) wordEls[j].el.classList.add("spoken");
        curWord = j;
      }
    }
    if (player) { player.addEventListener("timeupdate", sync); player.addEventListener("seeked", sync); }
    document.body.dataset.ready = "1";
  }
})();
