// Kind icons as inline SVG built through the DOM (no icon font, no CDN, nothing for the CSP
// to refuse): the same shapes in the list, on the map and in its legend.

const NS = "http://www.w3.org/2000/svg";

/** Each kind: [filled paths, stroked paths] on a 24×24 grid. */
const SHAPES = {
  waterlogging: [["M12 2.5C9.2 7 5.5 10.6 5.5 15a6.5 6.5 0 0 0 13 0c0-4.4-3.7-8-6.5-12.5z"], []],
  smoke: [["M12 2c1.2 4 5.5 6.2 5.5 11.2a5.5 5.5 0 0 1-11 0c0-2.6 1.4-4.2 2.6-5.3.1 2 1 3.3 2.2 3.3-.4-3.3-.3-6.3.7-9.2z"], []],
  illegal_parking: [["M4 3h16a1 1 0 0 1 1 1v16a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1z"],
    ["M9.5 17V7.5h3.2a2.8 2.8 0 0 1 0 5.6H9.5"]],
  street_vending: [["M3 9l2-5h14l2 5z", "M5 10h14v9H5z"], ["M9 19v-5h6v5"]],
  device_fault: [["M12 2.5L1.8 20.5h20.4z"], ["M12 9v5.5", "M12 16.8v.6"]],
  hotline: [["M6.6 10.8a15 15 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z"], []],
};
const FALLBACK = [["M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z"], []];

/** An <svg> icon of `kind` (unknown kinds get a plain disc). */
export function kindIcon(kind, { size = 16, title = "" } = {}) {
  const [fills, strokes] = SHAPES[kind] || FALLBACK;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("class", `kind-icon kind-${kind}`);
  svg.setAttribute("data-kind", kind);
  svg.setAttribute("aria-hidden", title ? "false" : "true");
  if (title) {
    const label = document.createElementNS(NS, "title");
    label.textContent = title;
    svg.append(label);
  }
  for (const d of fills) {
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("class", "fill");
    svg.append(path);
  }
  for (const d of strokes) {
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("class", "stroke");
    svg.append(path);
  }
  return svg;
}

export const ICON_KINDS = Object.keys(SHAPES).filter((k) => k !== "hotline");
