// Preact and htm from the vendored UMD builds (classic scripts loaded before the modules).
export const { h, render } = window.preact;
export const { useState, useEffect, useMemo, useRef, useCallback } = window.preactHooks;
export const html = window.htm.bind(h);

// Okabe–Ito: distinguishable with every common colour-vision deficiency; TINTS are light
// versions for backgrounds, where dark text keeps its contrast.
export const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"];
export const TINTS = ["#cfe3f1", "#fbe6bf", "#c4ece0", "#f3dcea", "#f6d3bf", "#d9eefa", "#fbf7c6", "#dddddd"];

export const label = (value) => String(value || "").toLowerCase().replace(/_/g, " ");
export const money = (value) => (value === null || value === undefined ? "n/a" : `$${Number(value).toPrecision(3)}`);

// "00:41:07" from milliseconds.
const clock = (ms) => {
  const t = Math.floor(ms / 1000);
  return [Math.floor(t / 3600), Math.floor(t / 60) % 60, t % 60].map((n) => String(n).padStart(2, "0")).join(":");
};

// Where a fragment came from (Fragment.location): "Marta Silva, 00:41:07–00:41:15", "pages 12–13",
// "chapter Title"; null when the source has no segments there.
export const whereText = (location) => {
  if (!location) return null;
  const parts = [];
  if (location.speaker) parts.push(location.speaker);
  if (location.timeStartMs !== null && location.timeStartMs !== undefined) {
    parts.push(`${clock(location.timeStartMs)}–${clock(location.timeEndMs ?? location.timeStartMs)}`);
  }
  const pages = location.pages || [];
  if (pages.length === 1) parts.push(`page ${pages[0]}`);
  else if (pages.length > 1) parts.push(`pages ${pages[0]}–${pages[pages.length - 1]}`);
  if (location.chapter) parts.push(`chapter “${location.chapter}”`);
  return parts.length ? parts.join(", ") : null;
};
