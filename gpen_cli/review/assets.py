"""The review page's style and script, inlined into the page so that it needs no other file
and nothing from a network. The script only adds to a page that reads without it: the
before/after slider, and the filter to the photos to review (also set by a `#review` link).
"""

from __future__ import annotations

STYLE = """
:root { --ink: #1d232b; --muted: #5d6875; --line: #dde1e6; --page: #f3f4f6;
  --card: #fff; --bad: #b42318; --bad-bg: #fef0ee; --warn: #9a6700; --good: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 16px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; }
.source { color: var(--muted); margin: 0 0 16px; overflow-wrap: anywhere; }
a { color: #0b5cad; }
.stats { display: flex; flex-wrap: wrap; gap: 10px; margin: 0 0 14px; padding: 0;
  list-style: none; }
.stats li { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 14px; min-width: 92px; }
.stats b { display: block; font-size: 20px; }
.stats span { color: var(--muted); font-size: 13px; }
.stats .alert { border-color: var(--bad); background: var(--bad-bg); }
.stats .alert b { color: var(--bad); }
.stats .lowest { min-width: 200px; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 20px;
  margin: 0 0 16px; }
.controls label { font-weight: 600; cursor: pointer; }
.controls input { width: 18px; height: 18px; vertical-align: -3px; margin: 0 6px 0 0; }
.shown, .hint { color: var(--muted); }
.js-only { display: none; }
.js .js-only { display: revert; }
.empty { background: var(--card); border: 1px dashed var(--line); border-radius: 10px;
  padding: 24px; text-align: center; color: var(--muted); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 16px 16px; margin: 0 0 16px; box-shadow: 0 1px 2px rgb(0 0 0 / 5%); }
.card.review { border-left: 5px solid var(--bad); }
.card h2 { font-size: 17px; margin: 0; overflow-wrap: anywhere; }
.head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 10px; }
.links { margin: 2px 0 10px; font-size: 13px; color: var(--muted); overflow-wrap: anywhere; }
.badge { font-size: 12px; font-weight: 600; border-radius: 999px; padding: 1px 9px;
  background: #e8ebef; color: var(--muted); white-space: nowrap; }
.badge.review, .badge.failed { background: var(--bad-bg); color: var(--bad); }
.badge.ok { background: #e7f5ec; color: var(--good); }
.badge.no_face, .badge.skipped { background: #fff4d6; color: var(--warn); }
.body { display: grid; grid-template-columns: minmax(0, 3fr) minmax(260px, 2fr); gap: 16px; }
.problem, .reasons { background: var(--bad-bg); color: var(--bad); border-radius: 8px;
  padding: 8px 12px; margin: 0 0 10px; word-break: break-word; }
.reasons { padding-left: 28px; }
.compare { position: relative; width: 100%; background: #15191e; border-radius: 8px;
  overflow: hidden; --pos: 50%; user-select: none; }
.compare img { position: absolute; inset: 0; width: 100%; height: 100%; display: block;
  object-fit: contain; }
.compare .before { clip-path: inset(0 calc(100% - var(--pos)) 0 0); }
.compare .divider { position: absolute; top: 0; bottom: 0; left: var(--pos); width: 2px;
  margin-left: -1px; background: #fff; box-shadow: 0 0 3px rgb(0 0 0 / 60%);
  pointer-events: none; }
.compare .divider::after { content: "\\2194"; position: absolute; top: 50%; left: 50%;
  transform: translate(-50%, -50%); width: 30px; height: 30px; border-radius: 50%;
  background: #fff; color: #15191e; font: 700 17px/30px system-ui, sans-serif;
  text-align: center; box-shadow: 0 0 4px rgb(0 0 0 / 50%); }
.compare input { position: absolute; inset: 0; width: 100%; height: 100%; margin: 0;
  opacity: 0; cursor: ew-resize; }
.compare .tag { position: absolute; top: 8px; padding: 1px 8px; border-radius: 4px;
  background: rgb(0 0 0 / 60%); color: #fff; font-size: 12px; pointer-events: none; }
.compare .tag.left { left: 8px; }
.compare .tag.right { right: 8px; }
.single { position: relative; border-radius: 8px; overflow: hidden; background: #15191e; }
.single img { display: block; width: 100%; height: 100%; object-fit: contain; }
.single .tag { position: absolute; top: 8px; left: 8px; padding: 1px 8px; border-radius: 4px;
  background: rgb(0 0 0 / 60%); color: #fff; font-size: 12px; }
.noimage { display: flex; align-items: center; justify-content: center; min-height: 64px;
  border-radius: 8px; background: #eceef1; color: var(--muted); padding: 16px;
  text-align: center; }
.faces h3 { font-size: 14px; margin: 0 0 8px; color: var(--muted); font-weight: 600; }
.facelist { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr));
  gap: 10px; }
.face { border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
.face.flagged { border-color: var(--bad); background: var(--bad-bg); }
.crops { display: flex; gap: 4px; margin: 0 0 6px; }
.crops figure { margin: 0; text-align: center; font-size: 11px; color: var(--muted); }
.crops img { display: block; max-width: 100%; height: auto; border-radius: 4px;
  background: #eceef1; }
.crops .blank { width: 96px; height: 96px; border-radius: 4px; background: #eceef1; }
.face dl { display: grid; grid-template-columns: auto 1fr; gap: 0 8px; margin: 0;
  font-size: 13px; }
.face dt { color: var(--muted); }
.face dd { margin: 0; font-variant-numeric: tabular-nums; }
.face .name { font-weight: 600; margin: 0 0 2px; }
.face .identity { font-weight: 700; }
.flagged .identity { color: var(--bad); }
.meter { display: block; height: 4px; border-radius: 2px; background: #e3e6ea;
  margin: 2px 0 3px; overflow: hidden; }
.meter i { display: block; height: 100%; background: var(--good); }
.flagged .meter i { background: var(--bad); }
.notrestored { color: var(--warn); margin: 0 0 4px; font-size: 13px; }
details { margin: 10px 0 0; }
summary { cursor: pointer; color: #0b5cad; }
details .facelist { margin-top: 10px; }
@media (max-width: 760px) {
  main { padding: 12px 10px 30px; }
  .body { grid-template-columns: minmax(0, 1fr); }
  .stats { gap: 6px; }
  .stats li { min-width: 0; flex: 1 1 28%; padding: 4px 8px; }
  .stats b { font-size: 17px; }
  .stats .lowest { flex-basis: 60%; }
  .facelist { grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); }
}
"""

SCRIPT = """
(function () {
  document.documentElement.classList.add("js");
  document.querySelectorAll(".compare").forEach(function (box) {
    var slider = box.querySelector("input");
    function place() { box.style.setProperty("--pos", slider.value + "%"); }
    slider.addEventListener("input", place);
    place();
  });
  var toggle = document.getElementById("only-review");
  var cards = Array.prototype.slice.call(document.querySelectorAll(".card"));
  var shown = document.getElementById("shown");
  var empty = document.getElementById("none-to-review");
  function apply() {
    var count = 0;
    cards.forEach(function (card) {
      card.hidden = toggle.checked && card.getAttribute("data-review") !== "1";
      if (!card.hidden) { count += 1; }
    });
    shown.textContent = "Showing " + count + " of " + cards.length + " photos";
    empty.hidden = !(toggle.checked && count === 0);
  }
  function fromAddress() {
    toggle.checked = location.hash === "#review";
    apply();
  }
  toggle.addEventListener("change", function () {
    var address = location.pathname + location.search + (toggle.checked ? "#review" : "");
    try { history.replaceState(null, "", address); } catch (error) { /* file: */ }
    apply();
  });
  window.addEventListener("hashchange", fromAddress);
  fromAddress();
})();
"""
