/* Arbiter annotator pages: key bindings, the ranking widget (keys and drag and drop), rating
 * focus, dialogs, inline errors. Plain JavaScript; htmx makes every request. */
(function () {
  "use strict";

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const ORDINALS = ["1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th"];
  const store = {
    get(key) { try { return window.localStorage.getItem("arbiter." + key); } catch (e) { return null; } },
    set(key, value) { try { window.localStorage.setItem("arbiter." + key, value); } catch (e) { /* private mode */ } },
  };

  function announce(text) {
    const region = $("#announce");
    if (region) region.textContent = text;
  }

  function showError(message) {
    const box = $("#task-errors");
    if (!box) return;
    box.replaceChildren();
    const line = document.createElement("p");
    line.className = "error-message";
    line.textContent = message;
    box.appendChild(line);
  }

  function clearError() {
    const box = $("#task-errors");
    if (box) box.replaceChildren();
  }

  /* ---- Ranking: an ordered list of places; a place holding several outputs is a tie. ---- */
  class Ranker {
    constructor(root) {
      this.root = root;
      this.list = $(".rank-list", root);
      this.pool = $(".rank-pool", root);
      this.input = $("input[name=ranking]", root);
      this.status = $(".rank-status", root);
      this.chips = new Map($$(".chip", root).map((chip) => [Number(chip.dataset.completionId), chip]));
      this.byNumber = new Map($$(".chip", root).map((chip) => [Number(chip.dataset.number), Number(chip.dataset.completionId)]));
      this.places = [];
      this.picked = null;
      this.drag = null;
      this.suppressClick = false;
      for (const [id, chip] of this.chips) this.bindChip(chip, id);
      root.ranker = this;
      this.render();
    }

    get unranked() {
      return Array.from(this.chips.keys()).filter((id) => this.locate(id) === null);
    }

    isComplete() { return this.unranked.length === 0; }

    locate(id) {
      const index = this.places.findIndex((place) => place.includes(id));
      return index === -1 ? null : index;
    }

    numberOf(id) { return Number(this.chips.get(id).dataset.number); }

    removeFromPlaces(id) {
      const index = this.locate(id);
      if (index === null) return null;
      this.places[index] = this.places[index].filter((other) => other !== id);
      if (this.places[index].length === 0) this.places.splice(index, 1);
      return index;
    }

    /* Pick output `number`; an unranked output is placed after everything ranked so far. */
    pickNumber(number) {
      const id = this.byNumber.get(number);
      if (id === undefined) return false;
      if (this.locate(id) === null) this.places.push([id]);
      this.picked = id;
      this.render();
      this.say(id);
      return true;
    }

    move(delta) {
      const id = this.picked;
      if (id === null) { showError("Pick an output first: press its number."); return; }
      const index = this.locate(id);
      if (this.places[index].length > 1) {
        // Moving out of a tie gives the output its own place just above or below the tie.
        this.removeFromPlaces(id);
        this.places.splice(delta < 0 ? index : index + 1, 0, [id]);
      } else {
        const target = index + delta;
        if (target < 0 || target >= this.places.length) return;
        [this.places[index], this.places[target]] = [this.places[target], this.places[index]];
      }
      this.render();
      this.say(id);
    }

    tieWithAbove() {
      const id = this.picked;
      if (id === null) { showError("Pick an output first: press its number."); return; }
      const index = this.locate(id);
      if (index === 0 && this.places[0].length === 1) { showError("The first place has nothing above it to tie with."); return; }
      if (index === 0) return;
      const aboveIndex = this.places[index].length > 1 ? index : index - 1;
      if (aboveIndex === index) return; // already tied with that place
      this.removeFromPlaces(id);
      this.places[aboveIndex].push(id);
      this.render();
      this.say(id);
    }

    unrank() {
      if (this.picked === null) return;
      const id = this.picked;
      this.removeFromPlaces(id);
      this.picked = null;
      this.render();
      announce(`Output ${this.numberOf(id)} is no longer ranked.`);
    }

    putDown() { this.picked = null; this.render(); }

    say(id) {
      const index = this.locate(id);
      if (index === null) return;
      const tied = this.places[index].length > 1 ? ", tied" : "";
      announce(`Output ${this.numberOf(id)}: ${ORDINALS[index]} place${tied}.`);
    }

    /* Drop `id` on a place (join it), before/after a place (new place), or back in the pool. */
    drop(id, target) {
      if (target.kind === "pool") {
        this.removeFromPlaces(id);
        if (this.picked === id) this.picked = null;
        this.render();
        return;
      }
      let index = target.index;
      const from = this.locate(id);
      const wasAlone = from !== null && this.places[from].length === 1;
      if (target.kind === "into") {
        if (from === index) return;
        this.removeFromPlaces(id);
        if (wasAlone && from < index) index -= 1;
        this.places[index].push(id);
      } else {
        this.removeFromPlaces(id);
        if (wasAlone && from < index) index -= 1;
        this.places.splice(index, 0, [id]);
      }
      this.picked = id;
      this.render();
      this.say(id);
    }

    render() {
      const rows = this.places.map((place, index) => {
        const row = document.createElement("li");
        row.className = "rank-place" + (place.length > 1 ? " is-tie" : "");
        row.dataset.index = String(index);
        const ordinal = document.createElement("span");
        ordinal.className = "rank-ordinal";
        ordinal.textContent = ORDINALS[index];
        const group = document.createElement("div");
        group.className = "rank-group";
        for (const id of place) group.appendChild(this.chips.get(id));
        row.append(ordinal, group);
        return row;
      });
      this.list.replaceChildren(...rows);
      this.pool.replaceChildren(...this.unranked.map((id) => this.chips.get(id)));
      for (const [id, chip] of this.chips) {
        chip.classList.toggle("is-picked", id === this.picked);
        chip.setAttribute("aria-pressed", id === this.picked ? "true" : "false");
        const index = this.locate(id);
        const place = index === null ? "not ranked" : `${ORDINALS[index]} place` + (this.places[index].length > 1 ? " (tie)" : "");
        chip.setAttribute("aria-label", `Output ${this.numberOf(id)}, ${place}`);
        const card = document.querySelector(`.output[data-completion-id="${id}"]`);
        if (card) {
          card.classList.toggle("is-picked", id === this.picked);
          const badge = $(".place-badge", card);
          if (badge) badge.textContent = index === null ? "" : ORDINALS[index] + (this.places[index].length > 1 ? " (tie)" : "");
        }
      }
      this.input.value = this.places.length ? JSON.stringify(this.places) : "";
      const left = this.unranked.length;
      this.status.textContent = left ? `${this.chips.size - left} of ${this.chips.size} placed` : "Every output is placed.";
    }

    /* Pointer-event drag and drop: works with a mouse, a pen and a finger. */
    bindChip(chip, id) {
      chip.addEventListener("click", (event) => {
        if (this.suppressClick) { this.suppressClick = false; event.preventDefault(); return; }
        this.pickNumber(this.numberOf(id));
      });
      chip.addEventListener("keydown", (event) => this.chipKey(event, id));
      chip.addEventListener("pointerdown", (event) => {
        if (event.button !== 0) return;
        this.drag = { id, chip, pointerId: event.pointerId, x: event.clientX, y: event.clientY, ghost: null, target: null };
        chip.setPointerCapture(event.pointerId);
      });
      chip.addEventListener("pointermove", (event) => this.dragMove(event));
      chip.addEventListener("pointerup", (event) => this.dragEnd(event, true));
      chip.addEventListener("pointercancel", (event) => this.dragEnd(event, false));
    }

    chipKey(event, id) {
      // Keys on a focused chip (used where no page-wide bindings exist, e.g. the review page).
      if (this.root.closest("#task")) return; // the work page's global handler does this
      const actions = {
        ArrowUp: () => { this.picked = id; if (this.locate(id) === null) this.places.push([id]); this.move(-1); },
        ArrowDown: () => { this.picked = id; if (this.locate(id) === null) this.places.push([id]); this.move(1); },
        t: () => { this.picked = id; this.tieWithAbove(); },
        u: () => { this.picked = id; this.unrank(); },
      };
      const action = actions[event.key] || actions[event.key.toLowerCase()];
      if (action) { event.preventDefault(); action(); this.chips.get(id).focus(); }
    }

    dragMove(event) {
      const drag = this.drag;
      if (!drag || drag.pointerId !== event.pointerId) return;
      if (!drag.ghost) {
        if (Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < 5) return;
        drag.ghost = drag.chip.cloneNode(true);
        drag.ghost.classList.add("ghost");
        drag.ghost.removeAttribute("aria-label");
        drag.ghost.setAttribute("aria-hidden", "true");
        document.body.appendChild(drag.ghost);
        drag.chip.classList.add("is-dragging");
      }
      drag.ghost.style.left = `${event.clientX + 8}px`;
      drag.ghost.style.top = `${event.clientY + 8}px`;
      this.showTarget(this.targetAt(event.clientX, event.clientY));
    }

    targetAt(x, y) {
      const under = document.elementFromPoint(x, y);
      if (!under || !this.root.contains(under)) return null;
      if (under.closest(".rank-pool-wrap")) return { kind: "pool", element: this.pool };
      const row = under.closest(".rank-place");
      if (row) {
        const box = row.getBoundingClientRect();
        const index = Number(row.dataset.index);
        const fraction = (y - box.top) / box.height;
        if (fraction < 0.28) return { kind: "before", index, element: row };
        if (fraction > 0.72) return { kind: "before", index: index + 1, element: row, after: true };
        return { kind: "into", index, element: row };
      }
      if (under.closest(".rank-list")) return { kind: "before", index: this.places.length, element: this.list };
      return null;
    }

    showTarget(target) {
      $$(".drop-before, .drop-after, .drop-into", this.root).forEach((el) => el.classList.remove("drop-before", "drop-after", "drop-into"));
      this.drag.target = target;
      if (!target) return;
      if (target.kind === "into" || target.kind === "pool" || target.element === this.list) target.element.classList.add("drop-into");
      else target.element.classList.add(target.after ? "drop-after" : "drop-before");
    }

    dragEnd(event, dropped) {
      const drag = this.drag;
      if (!drag || drag.pointerId !== event.pointerId) return;
      this.drag = null;
      if (!drag.ghost) return; // a plain click: the click handler picks
      drag.ghost.remove();
      drag.chip.classList.remove("is-dragging");
      $$(".drop-before, .drop-after, .drop-into", this.root).forEach((el) => el.classList.remove("drop-before", "drop-after", "drop-into"));
      this.suppressClick = true;
      window.setTimeout(() => { this.suppressClick = false; }, 0);
      if (dropped && drag.target) this.drop(drag.id, drag.target);
    }
  }

  /* ---- The current task ---- */
  let startedAt = performance.now();

  function currentTask() { return $("#task[data-task-id]"); }
  function judgmentForm() { return $("#judgment-form"); }
  // Set up on first use too: a key pressed between htmx's swap and its onLoad must not be lost.
  function ranker() {
    const root = $("#task [data-ranker]");
    if (!root) return null;
    return root.ranker || new Ranker(root);
  }

  function ratingCards() { return $$("#task .output"); }
  function currentRatingIndex() { return ratingCards().findIndex((card) => card.classList.contains("is-current")); }
  function setCurrentRating(index) {
    const cards = ratingCards();
    if (!cards.length) return;
    const clamped = Math.max(0, Math.min(cards.length - 1, index));
    cards.forEach((card, i) => card.classList.toggle("is-current", i === clamped));
    cards[clamped].scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  function rate(score) {
    const cards = ratingCards();
    let index = currentRatingIndex();
    if (index < 0) index = 0;
    const card = cards[index];
    const radio = $(`input[type=radio][value="${score}"]`, card);
    if (!radio) return false;
    radio.checked = true;
    announce(`Output ${card.dataset.number} rated ${score}.`);
    const next = cards.findIndex((c, i) => i > index && !$("input[type=radio]:checked", c));
    if (next !== -1) setCurrentRating(next);
    return true;
  }

  function missingRatings() {
    return ratingCards().filter((card) => $(".likert", card) && !$("input[type=radio]:checked", card));
  }

  /* Why the judgment cannot be sent yet, or "" when it can. */
  function problemWith(form) {
    const task = currentTask();
    const mode = task ? task.dataset.mode : "";
    if (mode === "pairwise" && !$("input[name=choice]:checked", form)) return "Choose first: 1 left better, 2 right better, 3 tie, 4 both bad.";
    if (mode === "ranking") {
      const r = ranker();
      if (r && !r.isComplete()) return `Rank every output before submitting: ${r.unranked.map((id) => r.numberOf(id)).join(", ")} not placed yet.`;
      const missing = missingRatings();
      const rated = ratingCards().length - missing.length;
      if (rated > 0 && missing.length) return `Rate every output or none: ${missing.map((c) => c.dataset.number).join(", ")} not rated yet.`;
    }
    if (mode === "rating" && missingRatings().length) return `Rate every output: ${missingRatings().map((c) => c.dataset.number).join(", ")} not rated yet.`;
    return "";
  }

  function submitJudgment() {
    const form = judgmentForm();
    if (!form) return;
    // A task swapped in a moment ago is wired to htmx only once it settles: Enter pressed
    // before then would send the form as a page load (and an undo pressed after it would not
    // wait for it). Wiring it now is what htmx would do then, and it does it once.
    if (window.htmx) window.htmx.process(form);
    form.requestSubmit();
  }

  function setChoice(id) {
    const radio = document.getElementById(id);
    if (!radio) return;
    radio.checked = true;
    const strengthApplies = radio.value === "a" || radio.value === "b";
    if (!strengthApplies) $$("input[name=strength]").forEach((s) => { s.checked = false; });
    clearError();
    announce(radio.labels[0].textContent.replace(/^\s*\S+\s*/, ""));
  }

  function setStrength(id) {
    const radio = document.getElementById(id);
    if (!radio) return;
    const choice = $("input[name=choice]:checked");
    if (!choice || !(choice.value === "a" || choice.value === "b")) { showError("Strength applies once left or right is better."); return; }
    radio.checked = !radio.checked; // pressing the key again clears it
    clearError();
  }

  function toggleDifferences(force) {
    const button = $("#task [data-action=diff]");
    if (!button) return;
    const on = force === undefined ? button.getAttribute("aria-pressed") !== "true" : force;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    $$("#task .output").forEach((card) => {
      const diff = $(".diff-text", card);
      if (!diff) return;
      diff.hidden = !on;
      $(".output-text", card).hidden = on;
    });
    store.set("diff", on ? "1" : "0");
  }

  function toggleGuidelines() {
    const panel = $("#guidelines");
    if (!panel) return;
    panel.open = !panel.open;
  }

  function openDialog(id) {
    const dialog = document.getElementById(id);
    if (dialog && !dialog.open) dialog.showModal();
  }

  function isTyping(target) {
    if (!(target instanceof Element)) return false;
    if (target.isContentEditable || target.closest("textarea, select")) return true;
    return target.matches("input") && !["radio", "checkbox", "button", "submit"].includes(target.type);
  }

  const PAIRWISE_KEYS = {
    1: () => setChoice("choice-left"), ArrowLeft: () => setChoice("choice-left"),
    2: () => setChoice("choice-right"), ArrowRight: () => setChoice("choice-right"),
    3: () => setChoice("choice-tie"), ArrowUp: () => setChoice("choice-tie"),
    4: () => setChoice("choice-both-bad"), ArrowDown: () => setChoice("choice-both-bad"),
    q: () => setStrength("strength-slight"), w: () => setStrength("strength-much"),
  };

  function rankingKey(key) {
    const r = ranker();
    if (!r) return false;
    if (/^[1-9]$/.test(key)) { clearError(); return r.pickNumber(Number(key)); }
    const actions = { ArrowUp: () => r.move(-1), ArrowDown: () => r.move(1), t: () => r.tieWithAbove(), u: () => r.unrank(), Escape: () => r.putDown() };
    if (!actions[key]) return false;
    clearError();
    actions[key]();
    return true;
  }

  function ratingKey(key) {
    if (/^[1-7]$/.test(key)) { clearError(); return rate(Number(key)); }
    const moves = { ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1 };
    if (!(key in moves)) return false;
    setCurrentRating(Math.max(0, currentRatingIndex()) + moves[key]);
    return true;
  }

  function onDialogKey(dialog, event) {
    if (event.key === "Enter" && !isTyping(event.target) && !event.target.closest("button")) {
      const form = $("form", dialog);
      if (form) { event.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (/^[1-9]$/.test(event.key) && !isTyping(event.target)) {
      const radios = $$("input[type=radio]", dialog);
      const radio = radios[Number(event.key) - 1];
      if (radio) { radio.checked = true; radio.focus(); event.preventDefault(); }
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.metaKey || event.isComposing) return;
    const dialog = $("dialog[open]");
    if (dialog) { onDialogKey(dialog, event); return; }
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (isTyping(event.target)) {
      if (key === "Escape") { event.target.blur(); (currentTask() || document.body).focus({ preventScroll: true }); event.preventDefault(); }
      else if (key === "Enter" && event.ctrlKey && event.target.form === judgmentForm()) { event.preventDefault(); submitJudgment(); }
      return;
    }
    if (event.ctrlKey) return;
    // A held key repeats: every answer, undo or dialog would be sent again (only arrows move on).
    if (event.repeat && !key.startsWith("Arrow")) { event.preventDefault(); return; }
    if (key === "?") { openDialog("help-dialog"); event.preventDefault(); return; }
    if (key === "g") { toggleGuidelines(); event.preventDefault(); return; }
    if (key === "z") { const undo = $("#undo-form"); if (undo) undo.requestSubmit(); event.preventDefault(); return; }
    const task = currentTask();
    if (!task) return;
    // Let buttons, links and scrolling regions keep their own Enter, Space and arrow keys.
    const onControl = event.target.closest("button, a, summary");
    if (onControl && (key === "Enter" || key === " ")) return;
    if (event.target.closest(".output-body, .prompt-body") && key.startsWith("Arrow")) return;
    const mode = task.dataset.mode;
    let handled = true;
    if (key === "Enter") submitJudgment();
    else if (key === "s") openDialog("skip-dialog");
    else if (key === "f") openDialog("flag-dialog");
    else if (key === "d") toggleDifferences();
    else if (key === "r") { const box = $("#rationale"); if (box) box.focus(); }
    else if (mode === "pairwise" && PAIRWISE_KEYS[key]) PAIRWISE_KEYS[key]();
    else if (mode === "ranking") handled = rankingKey(key);
    else if (mode === "rating") handled = ratingKey(key);
    else handled = false;
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "help") openDialog("help-dialog");
    else if (action === "guidelines") toggleGuidelines();
    else if (action === "skip") openDialog("skip-dialog");
    else if (action === "flag") openDialog("flag-dialog");
    else if (action === "diff") toggleDifferences();
    else if (action === "close-dialog") button.closest("dialog").close();
  });

  // Clicking a rating card makes it the one number keys rate.
  document.addEventListener("pointerdown", (event) => {
    const card = event.target.closest("#task.task-rating .output");
    if (card) setCurrentRating(ratingCards().indexOf(card));
  });

  document.addEventListener("close", (event) => {
    if (event.target.matches("dialog")) {
      const task = currentTask();
      if (task) task.focus({ preventScroll: true });
    }
  }, true);

  /* ---- htmx: validate before sending, report failures inline, set up swapped-in tasks ---- */
  document.addEventListener("htmx:configRequest", (event) => {
    const form = event.detail.elt;
    if (!(form instanceof HTMLFormElement) || form.id !== "judgment-form") return;
    const problem = problemWith(form);
    if (problem) { event.preventDefault(); showError(problem); return; }
    event.detail.parameters.time_spent_ms = String(Math.round(performance.now() - startedAt));
  });

  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    const message = status === 403
      ? "Not allowed (403): your session may have expired. Reload the page and sign in again."
      : `The server could not save this (HTTP ${status}). Your answer is still here: press Enter to try again.`;
    showError(message);
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    const source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (event.detail.target.id !== "work" || !(source instanceof HTMLFormElement)) return;
    const task = $("#task");
    const next = task && task.dataset.taskId ? "The next task is ready." : "All done for now.";
    if (source.id === "undo-form") { announce("Your last answer is taken back: answer this task again."); return; }
    announce((source.id === "judgment-form" ? "Saved. " : "Skipped. ") + next);
  });

  // A dialog's form refused (the lease expired, say) or not sent: the error is shown behind the
  // dialog, so close it.
  document.addEventListener("htmx:afterRequest", (event) => {
    const dialog = event.detail.elt.closest && event.detail.elt.closest("dialog[open]");
    if (dialog && (event.detail.failed || event.detail.xhr.status >= 400)) dialog.close();
  });

  document.addEventListener("htmx:sendError", () => {
    showError("Could not reach the server. Check your connection, then press Enter to try again.");
  });

  function setUp(root) {
    $$("[data-ranker]", root).forEach((element) => { if (!element.ranker) new Ranker(element); });
    // Lease expiry and other times in the annotator's own time zone.
    $$("time[data-local-time]", root).forEach((element) => {
      const when = new Date(element.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) element.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    });
    if (root.id === "task" || $("#task", root) || root === document.body) {
      startedAt = performance.now();
      const task = $("#task");
      if (!task) return;
      if (task.classList.contains("task-rating")) setCurrentRating(0);
      if (store.get("diff") === "1") toggleDifferences(true);
      if (root !== document.body) {
        task.focus({ preventScroll: true });
        window.scrollTo({ top: 0 });
      }
    }
  }

  function setUpGuidelines() {
    const panel = $("#guidelines");
    if (!panel) return;
    panel.open = store.get("guidelines") === "open";
    panel.addEventListener("toggle", () => store.set("guidelines", panel.open ? "open" : "closed"));
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpGuidelines();
    if (window.htmx) window.htmx.onLoad(setUp);
    else setUp(document.body);
  });
})();
