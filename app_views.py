"""Streamlit pieces the step-through pages share besides app_common: the browser side of a timeline figure, and a
chart's explanation (draw_core.present.views.EXPLANATIONS and the like) typeset.

A timeline (draw_core.present.viz.timeline_figure: Generate, Reconstruct, the Train page's glimpses, Attention at
work) holds every step t = 1..T, so the browser can move through them without asking the server. `follow` mounts,
next to one, a small Streamlit component (components v2: inline JavaScript run in the page, nothing fetched from
anywhere) that, in the browser:

- shows the server's step: when the step slider, the Prev/Next buttons or a shared URL change it, it moves the
  figure there;
- has its own controls: a step slider, Play at ½×, 1×, 2×, 4× and Pause, a line saying what step t shows;
- steps with the keyboard on that slider or on the figure once clicked: ←/→ one step, PageUp/PageDown ten,
  Home/End the first/last, Space plays/pauses;
- jumps to the step of a clicked bar or point of a chart over t (their points carry the step as customdata);
- when the figure is drawn anew in the same place (a live view's new data), stays on the step it showed;
- when the user stops (the shown step unchanged for STOP_MS, nothing playing), reports that step once: the
  server then sets the page's step, its slider and the URL (a rerun that leaves the figure as it is).

Every move is one Plotly.relayout with the step's update from the figure's layout.meta (window.Plotly is
Streamlit's own plotly.js), a few milliseconds.
"""

from __future__ import annotations

import functools

import streamlit as st

from draw_core.present.views import Explanation

STOP_MS = 600  # the user has stopped scrubbing when the shown step has not changed for this long
STEP_MS = 125  # Play at 1x: 8 steps a second

JS = """
const STOP_MS = %(stop_ms)d;
const STEP_MS = %(step_ms)d;
const KEYS = {ArrowLeft: -1, ArrowRight: 1, ArrowDown: -1, ArrowUp: 1, PageUp: -10, PageDown: 10};

export default function ({ data, parentElement, setTriggerValue }) {  // parentElement: this component's shadow root
  const { chart, step } = data;
  const root = parentElement.querySelector('.draw-timeline');
  const slider = root.querySelector('input[type=range]');
  const counter = root.querySelector('.draw-timeline-step');
  const label = root.querySelector('.draw-timeline-label');
  const stop = new AbortController();
  let gd = null, box = null, timeline = null, timer = null, player = null, attached = null;

  const shown = () => gd.__drawShown;

  function show(n) {
    n = Math.min(timeline.T, Math.max(1, Math.round(n)));
    if (n !== shown()) {
      gd.__drawShown = n;
      window.Plotly.relayout(gd, timeline.steps[n - 1]);
    }
    slider.value = n;
    counter.textContent = 't = ' + n + ' of ' + timeline.T;
    label.textContent = timeline.labels[n - 1];
    reportWhenStopped();
  }

  function reportWhenStopped() {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (gd && !player && shown() !== gd.__drawServer) {
        gd.__drawServer = shown();
        setTriggerValue('step', shown());
      }
    }, STOP_MS);
  }

  function pause() {
    clearInterval(player);
    player = null;
    root.classList.remove('playing');
    reportWhenStopped();
  }

  function play(speed) {
    pause();
    if (shown() >= timeline.T) show(1);
    root.classList.add('playing');
    player = setInterval(() => {
      if (shown() >= timeline.T) pause();
      else show(shown() + 1);
    }, STEP_MS / speed);
  }

  function onKey(event) {
    if (!timeline) return;
    let target = null;
    if (event.key === ' ') {
      event.preventDefault();
      if (player) pause();
      else play(1);
      return;
    }
    if (event.key in KEYS) target = shown() + KEYS[event.key];
    else if (event.key === 'Home') target = 1;
    else if (event.key === 'End') target = timeline.T;
    if (target === null) return;
    event.preventDefault();
    pause();
    show(target);
  }

  function onClick(event) {
    const point = event.points && event.points[0];
    if (point && point.customdata !== undefined && point.customdata !== null) {
      pause();
      show(Number(point.customdata));
    }
  }

  function attach(div) {
    const staying = div === gd ? shown() : null;  // the same chart drawn anew (a live view's new data): keep its step
    if (attached) attached.abort();
    attached = new AbortController();
    gd = div;
    timeline = div.layout.meta.timeline;
    box = div.closest('.st-key-' + chart) || div;
    if (gd.__drawTimeline !== timeline) {  // a figure this div had not shown: it opens on its initial step
      gd.__drawTimeline = timeline;
      gd.__drawShown = timeline.initial;
    }
    gd.__drawServer = step;
    gd.on('plotly_click', onClick);
    // Plotly.purge (the chart unmounted when the page changes) takes the listener methods off the div: check first
    attached.signal.addEventListener('abort', () => div.removeListener?.('plotly_click', onClick));
    box.tabIndex = 0;
    box.addEventListener('keydown', onKey, {signal: attached.signal});
    box.addEventListener('pointerdown', () => box.focus({preventScroll: true}), {signal: attached.signal});
    slider.max = timeline.T;
    root.hidden = false;
    show(staying ?? step);
  }

  slider.addEventListener('input', () => { pause(); show(Number(slider.value)); }, {signal: stop.signal});
  slider.addEventListener('keydown', (event) => { if (event.key === ' ') onKey(event); }, {signal: stop.signal});
  for (const button of root.querySelectorAll('button[data-speed]')) {
    button.addEventListener('click', () => play(Number(button.dataset.speed)), {signal: stop.signal});
  }
  root.querySelector('button.draw-timeline-pause').addEventListener('click', pause, {signal: stop.signal});

  function watch() {
    const div = document.querySelector('.st-key-' + chart + ' .js-plotly-plot');
    const drawn = div && window.Plotly && div.layout && div.layout.meta && div.layout.meta.timeline;
    if (drawn && (div !== gd || div.layout.meta.timeline !== timeline)) attach(div);
  }
  watch();
  const poll = setInterval(watch, 200);  // the figure may be drawn after this runs, and anew for a new figure
  return () => {
    clearInterval(poll);
    clearInterval(player);
    clearTimeout(timer);
    stop.abort();
    if (attached) attached.abort();
  };
}
"""

HTML = """<div class="draw-timeline" hidden>
  <div class="draw-timeline-row">
    <button data-speed="0.5" title="play at 4 steps a second">▶ ½×</button>
    <button data-speed="1" title="play at 8 steps a second (Space)">▶ 1×</button>
    <button data-speed="2" title="play at 16 steps a second">▶ 2×</button>
    <button data-speed="4" title="play at 32 steps a second">▶ 4×</button>
    <button class="draw-timeline-pause" title="pause (Space)">❚❚</button>
    <input type="range" min="1" max="1" step="1" value="1" aria-label="step t, in the browser">
    <span class="draw-timeline-step"></span>
  </div>
  <div class="draw-timeline-label"></div>
  <div class="draw-timeline-hint">In the browser: ← → one step (on the slider or the clicked figure), PgUp/PgDn ten,
    Home/End, Space plays or pauses; click a bar or a point over t to go to its step.</div>
</div>"""
CSS = """
.draw-timeline-row { display: flex; align-items: center; gap: 0.3rem; }
.draw-timeline button { border: 1px solid rgba(128, 128, 128, 0.4); border-radius: 0.4rem; background: transparent;
  color: inherit; padding: 0.15rem 0.5rem; font-size: 0.85rem; cursor: pointer; }
.draw-timeline.playing button.draw-timeline-pause { border-color: #ff1744; }
.draw-timeline input[type=range] { flex: 1; accent-color: #ff1744; }
.draw-timeline-step { font-variant-numeric: tabular-nums; min-width: 7.5rem; text-align: right; }
.draw-timeline-label { font-size: 0.85rem; font-variant-numeric: tabular-nums; min-height: 1.3rem; }
.draw-timeline-hint { font-size: 0.75rem; opacity: 0.65; }
"""

_TIMELINE = st.components.v2.component(
    "draw_timeline",
    html=HTML,
    css=CSS,
    js=JS % {"stop_ms": STOP_MS, "step_ms": STEP_MS},
)


def follow(chart_key: str, *, T: int, step: int, initial: int, step_key: str = "step") -> None:
    """Mount the timeline controller of the figure drawn with st.plotly_chart(..., key=chart_key): T steps, the
    figure opening on step `initial`, the server's step `step`; a step the user stops at in the browser is written
    to st.session_state[step_key] before the next run (so the page's step slider and URL follow)."""
    key = f"{chart_key}_follow"
    _TIMELINE(
        key=key,
        data={"chart": chart_key, "step": int(step), "frames": int(T), "initial": int(initial)},
        on_step_change=functools.partial(take_reported_step, st.session_state, key, step_key, T),
    )


def take_reported_step(state, key: str, step_key: str, T: int) -> None:
    """The component's callback: the step it reported (its trigger value under state[key]) becomes
    state[step_key], when it is a step 1..T."""
    value = (state.get(key) or {}).get("step")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value <= T:
        state[step_key] = int(value)


def explain(explanation: Explanation, container=st) -> None:
    """Under a chart: the paper's equation behind it (number and formula, typeset) and the one thing to notice."""
    container.latex(explanation.latex)
    container.caption(f"**{explanation.number}**: {explanation.notice}")
