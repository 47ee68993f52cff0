// Highlight segments: the text split at every span boundary, each piece with the spans over it.

// Offsets from the API count Unicode code points; JavaScript strings count UTF-16 units.
export function codePointIndex(text) {
  if (!/[\uD800-\uDFFF]/.test(text)) return null;
  const units = [];
  let unit = 0;
  for (const ch of text) {
    units.push(unit);
    unit += ch.length;
  }
  units.push(unit);
  return units;
}

// spans: [{id, model, start, end}] (code points). Returns [{start, end, spans}] in UTF-16
// units covering the whole text; `spans` is empty for plain text.
export function segmentsOf(text, spans) {
  const units = codePointIndex(text);
  const at = (point) => (units ? units[Math.min(point, units.length - 1)] : Math.min(point, text.length));
  const events = [];
  for (const span of spans) {
    const start = at(span.start);
    const end = at(span.end);
    if (end > start) events.push([start, 1, span], [end, 0, span]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const segments = [];
  const active = new Map();
  let cursor = 0;
  for (const [point, opening, span] of events) {
    if (point > cursor) {
      segments.push({ start: cursor, end: point, spans: [...active.values()] });
      cursor = point;
    }
    if (opening) active.set(span.id, span);
    else active.delete(span.id);
  }
  if (cursor < text.length) segments.push({ start: cursor, end: text.length, spans: [] });
  return segments;
}
