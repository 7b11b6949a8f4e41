// The one way the console puts data on the page: elements built with textContent, never markup.
// Everything shown comes from the bus, where any device on the site network can publish: a camera,
// a rule name, a worker's model, an error string may hold "<img onerror=...>". h() makes elements and
// adds strings as text nodes, so such a value shows literally and never runs. No file under
// viewer/console/static/ assigns innerHTML/outerHTML or calls insertAdjacentHTML (tests/test_viewer_hostile.py
// checks that and injects markup into every field of every message kind).

// h("td", {className: "x", dataset: {event: id}, onclick: fn}, "text", child, ...) -> element
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key in el && key !== "list") el[key] = value;
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child)); // append() of a string makes a text node
  }
}

// Replace an element's children with these (strings become text).
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Text of any value off the wire: numbers formatted, anything else as it is (shown, not interpreted).
export function num(value, digits = 1) {
  if (typeof value === "number" && Number.isFinite(value)) return value.toFixed(digits);
  return value === undefined || value === null ? "-" : String(value);
}

export function int(value) {
  return typeof value === "number" && Number.isFinite(value) ? String(Math.round(value)) : num(value);
}
