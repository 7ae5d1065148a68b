// Scores: the list shown on a trace or observation, and the form that adds one.

import { api } from "./api.js";
import { h, replace, toast } from "./dom.js";
import * as fmt from "./format.js";
import { icon } from "./icons.js";
import { scoreValue } from "./views/common.js";

export function scoreList(scores) {
  if (!scores.length) return h("div", { class: "muted small" }, "No scores yet.");
  return h(
    "table",
    { class: "table table-compact scores-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Value"), h("th", {}, "Source"), h("th", {}, "Comment"), h("th", {}, "When"))),
    h(
      "tbody",
      {},
      scores.map((sc) =>
        h(
          "tr",
          { dataset: { scoreId: sc.id } },
          h("td", { class: "score-name-cell" }, sc.name),
          h("td", { class: "mono" }, h("span", { class: `score-val-cell dt-${sc.data_type}` }, scoreValue(sc))),
          h("td", { class: "muted" }, sc.source || ""),
          h("td", { class: "score-comment" }, sc.comment || ""),
          h("td", { class: "muted nowrap" }, fmt.relative(sc.timestamp)),
        ),
      ),
    ),
  );
}

/** The "add a score" form; `onAdded()` runs after the server accepted it. */
export function scoreForm({ traceId, observationId, onAdded }) {
  const name = h("input", { class: "input", name: "score-name", placeholder: "e.g. correctness", required: true, "aria-label": "Score name", autocomplete: "off" });
  const type = h(
    "select",
    { class: "input select", name: "score-type", "aria-label": "Score type" },
    h("option", { value: "numeric" }, "Numeric"),
    h("option", { value: "boolean" }, "Boolean"),
    h("option", { value: "categorical" }, "Categorical"),
  );
  const valueHost = h("span", { class: "score-value-host" });
  const comment = h("input", { class: "input", name: "score-comment", placeholder: "Comment (optional)", "aria-label": "Comment", autocomplete: "off" });
  const error = h("div", { class: "form-error" });
  let valueInput = null;
  const renderValue = () => {
    if (type.value === "boolean") {
      valueInput = h("select", { class: "input select", name: "score-value", "aria-label": "Value" }, h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
    } else if (type.value === "categorical") {
      valueInput = h("input", { class: "input", name: "score-value", placeholder: "category", "aria-label": "Value", required: true });
    } else {
      valueInput = h("input", { class: "input", name: "score-value", type: "number", step: "any", placeholder: "0.9", "aria-label": "Value", required: true });
    }
    replace(valueHost, valueInput);
  };
  type.addEventListener("change", renderValue);
  renderValue();
  const submit = h("button", { class: "btn btn-primary", type: "submit" }, icon("plus", 13), "Add score");
  const form = h("form", { class: "score-form" }, h("div", { class: "score-form-row" }, name, type, valueHost, comment, submit), error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const dataType = type.value;
    let value;
    if (dataType === "numeric") {
      value = Number(valueInput.value);
      if (valueInput.value.trim() === "" || Number.isNaN(value)) {
        error.textContent = "Enter a number.";
        return;
      }
    } else if (dataType === "boolean") value = valueInput.value === "true";
    else value = valueInput.value.trim();
    if (!name.value.trim()) {
      error.textContent = "Give the score a name.";
      return;
    }
    const body = { trace_id: traceId, name: name.value.trim(), value, data_type: dataType, comment: comment.value.trim() || null };
    if (observationId) body.observation_id = observationId;
    submit.disabled = true;
    try {
      await api("scores", null, { method: "POST", body });
      name.value = "";
      comment.value = "";
      renderValue();
      toast("Score added", "ok");
      if (onAdded) await onAdded();
    } catch (err) {
      error.textContent = err.message || String(err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
