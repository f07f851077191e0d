// The live list: cards sent by /live (server-sent events) go to the top of the list, severe ones above the
// rest, and are announced to screen readers. A card of repeats (data-key) replaces the card with the same key
// and moves to the top; a burst of repeats is announced once. Without this script the page works as it is:
// reload it.
(function () {
  "use strict";
  var list = document.getElementById("feed");
  if (!list || !list.dataset.live || !window.EventSource) {
    return;
  }
  var polite = document.getElementById("feed-announce");
  var urgent = document.getElementById("feed-alert");
  var empty = document.getElementById("feed-empty");
  var QUIET_MS = 60000; // a card of repeats is announced at most once a minute
  var announced = {}; // data-key -> when it was last announced (ms)

  function find(name, value) {
    for (var li = list.firstElementChild; li; li = li.nextElementSibling) {
      if (li.dataset[name] === value) {
        return li;
      }
    }
    return null;
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

  // What the teacher was doing in the card being replaced: a note typed, the field or button focused.
  function carryOver(old, card) {
    var oldNote = old.querySelector("input[name=note]");
    var note = card.querySelector("input[name=note]");
    if (oldNote && note) {
      note.value = oldNote.value;
    }
    var active = document.activeElement;
    if (!active || !old.contains(active)) {
      return null;
    }
    if (active === oldNote) {
      return note;
    }
    var state = active.form && active.form.querySelector("input[name=state]");
    return state ? card.querySelector("input[name=state][value=" + state.value + "] ~ button") : null;
  }

  function add(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    var card = template.content.firstElementChild;
    if (!card || !card.dataset.id) {
      return;
    }
    var key = card.dataset.key;
    var old = key ? find("key", key) : null;
    var focus = null;
    if (old) {
      if (old.dataset.id === card.dataset.id && old.dataset.count === card.dataset.count) {
        return; // shown as it is
      }
      focus = carryOver(old, card);
      list.removeChild(old);
    } else if (find("id", card.dataset.id)) {
      return;
    }
    var severe = card.dataset.severe === "true";
    list.insertBefore(card, severe ? list.firstElementChild : firstPlain());
    if (focus) {
      focus.focus();
    }
    if (empty) {
      empty.hidden = true;
    }
    var now = Date.now();
    if (key) {
      if (announced[key] && now - announced[key] < QUIET_MS) {
        return;
      }
      announced[key] = now;
    }
    announce(severe ? urgent : polite, card.dataset.announce);
  }

  var source = new EventSource(list.dataset.live);
  source.addEventListener("item", function (event) {
    add(event.data);
  });
})();
