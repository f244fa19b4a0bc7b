// Renders /openapi.json as a list of operations grouped by tag. No dependencies.
"use strict";
(async function () {
  const root = document.getElementById("ops");
  let doc;
  try {
    doc = await (await fetch("/openapi.json")).json();
  } catch (e) {
    root.textContent = "Could not load /openapi.json: " + e;
    return;
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  const el = (tag, attrs, ...kids) => {
    const n = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "class" ? (n.className = v) : n.setAttribute(k, v)));
    kids.flat().forEach((k) => n.append(k instanceof Node ? k : document.createTextNode(String(k))));
    return n;
  };
  // Expands $ref into an example-like outline of the schema.
  const outline = (s, depth) => {
    if (!s || depth > 6) return "…";
    if (s.$ref) return outline(schemas[s.$ref.split("/").pop()], depth + 1);
    if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map((x) => outline(x, depth + 1)).join(" | ");
    const type = Array.isArray(s.type) ? s.type.filter((t) => t !== "null").concat(s.type.includes("null") ? ["null"] : []).join(" | ") : s.type;
    if (s.type === "array" || (Array.isArray(s.type) && s.type.includes("array"))) return [outline(s.items, depth + 1)];
    if (s.properties) {
      const o = {};
      for (const [k, v] of Object.entries(s.properties)) {
        o[k + ((s.required || []).includes(k) ? "" : "?")] = outline(v, depth + 1);
      }
      return o;
    }
    return (type || "any") + (s.format ? " (" + s.format + ")" : "");
  };
  const schemaBlock = (content) => {
    if (!content) return null;
    const [mime, media] = Object.entries(content)[0];
    return el("pre", {}, mime + "\n" + JSON.stringify(outline(media.schema, 0), null, 2));
  };
  const groups = {};
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      (groups[tag] = groups[tag] || []).push({ path, method, op });
    }
  }
  const render = (filter) => {
    root.replaceChildren();
    for (const [tag, ops] of Object.entries(groups).sort()) {
      const shown = ops.filter(({ path, op }) => !filter || (tag + path + (op.summary || "") + (op.description || "")).toLowerCase().includes(filter));
      if (!shown.length) continue;
      root.append(el("h2", {}, tag));
      for (const { path, method, op } of shown) {
        const body = el("div", { class: "body" });
        if (op.description) body.append(el("p", {}, op.description));
        if (op.security) body.append(el("p", { class: "lock" }, "Requires: " + op.security.map((s) => Object.keys(s).join(", ")).join(" or ")));
        if (op.parameters && op.parameters.length) {
          body.append(el("h4", {}, "Parameters"), el("table", {}, op.parameters.map((p) =>
            el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, p.required ? "required" : "optional"), el("td", {}, p.description || "")))));
        }
        if (op.requestBody) body.append(el("h4", {}, "Request body"), schemaBlock(op.requestBody.content));
        body.append(el("h4", {}, "Responses"));
        for (const [status, r] of Object.entries(op.responses || {})) {
          body.append(el("p", {}, el("strong", {}, status), " ", r.description || ""));
          const block = schemaBlock(r.content);
          if (block) body.append(block);
        }
        root.append(el("details", {}, el("summary", {}, el("span", { class: "m " + method }, method), path, op.summary ? "  — " + op.summary : ""), body));
      }
    }
  };
  render("");
  document.getElementById("filter").addEventListener("input", (e) => render(e.target.value.toLowerCase()));
})();
