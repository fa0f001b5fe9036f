// The call page: speaker lanes, transcript and segment table, kept in sync with the audio.
// Every text is inserted with textContent (never as HTML), so a transcript cannot inject markup.
"use strict";
(function () {
  const callId = JSON.parse(document.getElementById("call-id").textContent);
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

  fetch("/calls/" + encodeURIComponent(callId) + "/data.json", { credentials: "same-origin" })
    .then(r => r.json()).then(render);

  function render(data) {
    const segs = data.segments, words = data.words;
    const duration = data.call.duration_s || (segs.length ? segs[segs.length - 1].end_s : 1);
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
