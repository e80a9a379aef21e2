// ThumbHash placeholders (https://evanw.github.io/thumbhash/): the blurred
// stand-in a worker announces with the first size it writes, painted into the
// thumbnails' slots until the thumbnails themselves arrive.

// A ThumbHash (https://evanw.github.io/thumbhash/, base64) as RGBA pixels, at
// most 32 a side: a blurred stand-in that a worker announces with the first
// size it writes. The format is a few DCT coefficients of luminance, two
// colour channels (and alpha), four bits each after a small header.
export function decodeThumbHash(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  if (bytes.length < 5) return null;
  const header = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16);
  const header2 = bytes[3] | (bytes[4] << 8);
  const alpha = (header >> 23) & 1;
  const landscape = (header2 >> 15) & 1;
  const longSide = alpha ? 5 : 7;
  const shortSide = header2 & 7;
  const [lx, ly] = landscape ? [longSide, shortSide] : [shortSide, longSide];
  if (!lx || !ly || (alpha && bytes.length < 6)) return null;
  const ratio = lx / ly;
  const dc = {
    l: (header & 63) / 63,
    p: ((header >> 6) & 63) / 31.5 - 1,
    q: ((header >> 12) & 63) / 31.5 - 1,
    a: alpha ? (bytes[5] & 15) / 15 : 1,
  };
  const scale = {
    l: ((header >> 18) & 31) / 31,
    // Colour is boosted a quarter, as the encoder's quantisation dulls it.
    p: (((header2 >> 3) & 63) / 63) * 1.25,
    q: (((header2 >> 9) & 63) / 63) * 1.25,
    a: alpha ? (bytes[5] >> 4) / 15 : 0,
  };
  let nibble = 0;
  let short = false;
  const at = alpha ? 6 : 5;
  const next = () => {
    const byte = bytes[at + (nibble >> 1)];
    if (byte === undefined) short = true;
    const value = nibble & 1 ? byte >> 4 : byte & 15;
    nibble += 1;
    return value;
  };
  // The coefficients of a channel, over a triangle of nx × ny frequencies, DC left out.
  const channel = (nx, ny, factor) => {
    const terms = [];
    for (let cy = 0; cy < ny; cy++) {
      for (let cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++) terms.push({ cx, cy, value: (next() / 7.5 - 1) * factor });
    }
    return terms;
  };
  const l = channel(Math.max(3, lx), Math.max(3, ly), scale.l);
  const p = channel(3, 3, scale.p);
  const q = channel(3, 3, scale.q);
  const a = alpha ? channel(5, 5, scale.a) : [];
  if (short) return null;
  const width = ratio > 1 ? 32 : Math.round(32 * ratio);
  const height = ratio > 1 ? Math.round(32 / ratio) : 32;
  const cosines = (size) => Array.from({ length: size }, (_, i) => Array.from({ length: 7 }, (_, c) => Math.cos((Math.PI / size) * (i + 0.5) * c)));
  const [fx, fy] = [cosines(width), cosines(height)];
  const sum = (start, terms, x, y) => terms.reduce((total, t) => total + t.value * fx[x][t.cx] * fy[y][t.cy] * 2, start);
  const pixels = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const lum = sum(dc.l, l, x, y);
      const pc = sum(dc.p, p, x, y);
      const qc = sum(dc.q, q, x, y);
      const b = lum - (2 / 3) * pc;
      const r = (3 * lum - b + qc) / 2;
      // Clamped, then cut to 8 bits (not rounded): the pixels the format's reference decoder gives.
      const to8 = (value) => Math.floor(Math.min(1, Math.max(0, value)) * 255);
      pixels.set([to8(r), to8(r - qc), to8(b), to8(sum(dc.a, a, x, y))], (y * width + x) * 4);
    }
  }
  return { width, height, pixels };
}

// Paints `placeholder` into each of `figures` still waiting for its thumbnail.
export function paintPlaceholder(figures, placeholder) {
  let image;
  try {
    image = placeholder && decodeThumbHash(placeholder);
  } catch {
    return;
  }
  if (!image) return;
  for (const figure of figures) {
    if (figure.dataset.state !== "pending" || figure.querySelector("canvas.blurred")) continue;
    const canvas = document.createElement("canvas");
    canvas.className = "blurred";
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.getContext("2d").putImageData(new ImageData(image.pixels, image.width, image.height), 0, 0);
    figure.dataset.placeholder = placeholder;
    const frame = figure.querySelector(".frame");
    // The large slot has no height of its own: the placeholder gives it the photo's shape.
    if (figure.dataset.size === "large") frame.style.aspectRatio = `${image.width} / ${image.height}`;
    frame.prepend(canvas);
  }
}
