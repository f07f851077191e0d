// The live list: items sent by /live (server-sent events) go to the top of the list, severe ones above the
// rest, and are announced to screen readers. Without this script the page works as it is: reload it.
(function () {
  "use strict";
  var list = document.getElementById("feed");
  if (!list || !list.dataset.live || !window.EventSource) {
    return;
  }
  var polite = document.getElementById("feed-announce");
  var urgent = document.getElementById("feed-alert");
  var empty = document.getElementById("feed-empty");

  function shown(id) {
    for (var li = list.firstElementChild; li; li = li.nextElementSibling) {
      if (li.dataset.id === id) {
        return true;
      }
    }
    return false;
  }

  function firstPlain() {
    for (var li = list.firstElementChild; li; li = li.nextElementSibling) {
      if (li.dataset.severe !== "true") {
        return li;
      }
    }
    return null;
  }

  function announce(region, text) {
    if (!region || !text) {
      return;
    }
    var line = document.createElement("p");
    line.textContent = text;
    region.appendChild(line);
    while (region.childElementCount > 5) {
      region.removeChild(region.firstElementChild);
    }
  }

  function add(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    var item = template.content.firstElementChild;
    if (!item || !item.dataset.id || shown(item.dataset.id)) {
      return;
    }
    var severe = item.dataset.severe === "true";
    list.insertBefore(item, severe ? list.firstElementChild : firstPlain());
    if (empty) {
      empty.hidden = true;
    }
    announce(severe ? urgent : polite, item.dataset.announce);
  }

  var source = new EventSource(list.dataset.live);
  source.addEventListener("item", function (event) {
    add(event.data);
  });
})();
