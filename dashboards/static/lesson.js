// "This lesson": every <time data-countdown> shows its end time and, each second, the time left (mm:ss).
// Without this script the end time shows alone. Typing a number of minutes chooses that duration.
(function () {
  "use strict";
  var clocks = Array.prototype.slice.call(document.querySelectorAll("time[data-countdown]"));

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  clocks.forEach(function (clock) {
    clock.dataset.end = clock.textContent;
  });

  function tick() {
    var now = Date.now();
    clocks.forEach(function (clock) {
      var left = Math.floor((Date.parse(clock.getAttribute("datetime")) - now) / 1000);
      if (isNaN(left)) {
        return;
      }
      if (left <= 0) {
        clock.textContent = clock.dataset.end + " (" + clock.dataset.ended + ")";
        return;
      }
      clock.textContent = clock.dataset.end + " (" + clock.dataset.remaining + " " + Math.floor(left / 60) + ":" +
        pad(left % 60) + ")";
    });
  }

  if (clocks.length) {
    tick();
    window.setInterval(tick, 1000);
  }

  var minutes = document.getElementById("grant-minutes");
  var byMinutes = document.getElementById("grant-for-minutes");
  if (minutes && byMinutes) {
    minutes.addEventListener("input", function () {
      if (minutes.value) {
        byMinutes.checked = true;
      }
    });
  }
})();
