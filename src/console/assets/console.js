// opennvr-edge console: what the pages cannot do without a script.
// Loaded from our own origin (the Content-Security-Policy allows no inline
// script); every page works without it, this only makes them live.
"use strict";

// Live frames: reload each <img class="live"> about every 1.5 s. The next
// frame is fetched into a detached image and swapped in once decoded, so the
// picture never blanks; a frame that fails waits longer before the next try.
function refreshLive() {
  document.querySelectorAll("img.live").forEach(function (img) {
    var base = img.getAttribute("src").split("?")[0];
    var delay = 1500;
    function next() {
      var probe = new Image();
      probe.onload = function () {
        img.src = probe.src;
        delay = 1500;
        setTimeout(next, delay);
      };
      probe.onerror = function () {
        delay = Math.min(delay * 2, 15000);
        setTimeout(next, delay);
      };
      probe.src = base + "?t=" + Date.now();
    }
    setTimeout(next, delay);
  });
}

// The grid's status lines are swapped in by htmx: carry each one's state
// to its figure (after any swap, whichever element htmx reports).
document.addEventListener("htmx:afterSwap", function () {
  document.querySelectorAll("figure.camera").forEach(function (fig) {
    var cap = fig.querySelector("figcaption[data-state]");
    if (cap) fig.setAttribute("data-state", cap.getAttribute("data-state"));
  });
});

// An event's recording: seek the chunk to the event's moment.
function seekPlayback() {
  var v = document.getElementById("playback");
  if (!v) return;
  var at = parseFloat(v.getAttribute("data-offset") || "0");
  function seek() {
    if (isFinite(at) && at > 0) {
      v.currentTime = Math.min(at, isFinite(v.duration) ? v.duration : at);
    }
  }
  if (v.readyState >= 1) seek();
  else v.addEventListener("loadedmetadata", seek, { once: true });
}

// Recordings: a click on a chunk plays it in <video id="player">; at its
// end the next chunk follows.
function chunkPlayer() {
  var player = document.getElementById("player");
  if (!player) return;
  var chunks = Array.prototype.slice.call(document.querySelectorAll("a.chunk"));
  var current = -1;
  function play(i) {
    if (i < 0 || i >= chunks.length) return;
    if (current >= 0) chunks[current].classList.remove("playing");
    current = i;
    chunks[i].classList.add("playing");
    player.setAttribute("data-recording-id", chunks[i].getAttribute("data-recording-id"));
    // Loads even where autoplay is refused (no user gesture): the chunk is ready to play.
    player.preload = "auto";
    player.src = chunks[i].getAttribute("href");
    player.load();
    var p = player.play();
    if (p && p.catch) p.catch(function () {});
  }
  chunks.forEach(function (a, i) {
    a.addEventListener("click", function (ev) {
      ev.preventDefault();
      play(i);
    });
  });
  player.addEventListener("ended", function () {
    play(current + 1);
  });
}

// Forms that destroy something ask first (data-confirm holds the question).
function confirmForms() {
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.getAttribute("data-confirm"))) ev.preventDefault();
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  refreshLive();
  seekPlayback();
  chunkPlayer();
  confirmForms();
});
