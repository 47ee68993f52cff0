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
