// The sharp side of the thumbq benchmark: what a Node.js service built on
// sharp (and the libvips it ships) does, on one thread, with no operation cache.
//
// Usage: node reference.mjs FILE RUNS LARGE MEDIUM SMALL [OUTDIR]
//
// The same command line and the same work as bench/vips_reference.c: reads
// FILE into memory once, makes the thumbnails once untimed (warm-up), then
// RUNS times, each timed on its own:
//   - the image turned upright by its EXIF orientation and resized to fit the
//     LARGE x LARGE box (shrink-on-load for JPEG, never enlarging), taken out
//     as raw pixels so that it is decoded only once;
//   - those pixels resized to the MEDIUM box and to the SMALL box;
//   - all three encoded as JPEG at quality 85, metadata stripped (sharp's default).
// Prints each run's milliseconds, one per line, and nothing else on stdout.
// With OUTDIR, also writes the last run's thumbnails there as large.jpg,
// medium.jpg and small.jpg, after its clock stopped.
//
// THUMBQ_BENCH_MOZJPEG=1 encodes with sharp's mozjpeg settings (trellis
// quantisation, overshoot deringing, optimised progressive scans, quantisation
// table 3) instead of libjpeg-turbo's baseline ones.
//
// THUMBQ_BENCH_WEBP=1 makes what thumbq's worker makes by default: each size
// resized once to raw pixels, then encoded as the JPEG and as a WebP (quality
// 86, effort 4: libwebp's quality and method as the worker sets them). With
// OUTDIR, the WebPs are written too, as large.webp, medium.webp and small.webp.
//
// scripts/bench installs sharp here with npm ci (package-lock.json).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import sharp from 'sharp';

const SIZE_NAMES = ['large', 'medium', 'small'];

// The longest side fits the box, the aspect ratio is kept, nothing is enlarged
// and no side is 0: the rule of thumbq's Sizes::fit, rounding alike
// (half up), as fit_within in bench/vips_reference.c.
function fitWithin(box, width, height) {
  const longest = Math.max(width, height);
  if (longest <= box) {
    return { width, height };
  }
  const side = (length) => Math.max(1, Math.floor((length * box + Math.floor(longest / 2)) / longest));
  return { width: side(width), height: side(height) };
}

// The three thumbnails of `input` as JPEG buffers, largest first, and with
// `webp` each one's WebP after the three JPEGs.
async function makeThumbnails(input, boxes, mozjpeg, webp) {
  const metadata = await sharp(input, { failOn: 'none' }).metadata();
  const upright = metadata.autoOrient;
  const largeSize = fitWithin(boxes[0], upright.width, upright.height);
  const large = await sharp(input, { failOn: 'none' })
    .rotate()
    .resize({ ...largeSize, fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = large.info;

  const saved = [];
  const webps = [];
  for (const box of boxes) {
    const size = fitWithin(box, width, height);
    let image = sharp(large.data, { raw: { width, height, channels } });
    if (size.width !== width || size.height !== height) {
      image = image.resize({ ...size, fit: 'fill' });
    }
    if (!webp) {
      saved.push(await image.jpeg({ quality: 85, mozjpeg }).toBuffer());
      continue;
    }
    // Resized once; both formats are encoded from the same pixels, as the worker does.
    const resized = await image.raw().toBuffer({ resolveWithObject: true });
    const raw = { raw: { width: resized.info.width, height: resized.info.height, channels: resized.info.channels } };
    saved.push(await sharp(resized.data, raw).jpeg({ quality: 85, mozjpeg }).toBuffer());
    webps.push(await sharp(resized.data, raw).webp({ quality: 86, effort: 4 }).toBuffer());
  }
  return saved.concat(webps);
}

function usage(message) {
  process.stderr.write(`${message}\nusage: node reference.mjs FILE RUNS LARGE MEDIUM SMALL [OUTDIR]\n`);
  process.exit(1);
}

async function main(args) {
  if (args.length !== 5 && args.length !== 6) {
    usage('expected 5 or 6 arguments');
  }
  const [file, runsText, ...rest] = args;
  const runs = Number.parseInt(runsText, 10);
  const boxes = rest.slice(0, 3).map((box) => Number.parseInt(box, 10));
  const outdir = rest[3];
  if (!(runs >= 1) || !boxes.every((box) => box >= 1)) {
    usage('RUNS and the boxes must be positive');
  }
  const mozjpeg = process.env.THUMBQ_BENCH_MOZJPEG === '1';
  const webp = process.env.THUMBQ_BENCH_WEBP === '1';
  // One libvips thread, as VIPS_CONCURRENCY=1 for the C program, and no cache,
  // so that every run decodes and resizes again.
  sharp.concurrency(1);
  sharp.cache(false);
  const input = readFileSync(file);

  await makeThumbnails(input, boxes, mozjpeg, webp);
  for (let run = 0; run < runs; run++) {
    const started = process.hrtime.bigint();
    const saved = await makeThumbnails(input, boxes, mozjpeg, webp);
    const elapsed = process.hrtime.bigint() - started;
    process.stdout.write(`${(Number(elapsed) / 1e6).toFixed(3)}\n`);
    if (run === runs - 1 && outdir !== undefined) {
      saved.forEach((bytes, i) => writeFileSync(join(outdir, `${SIZE_NAMES[i % 3]}.${i < 3 ? 'jpg' : 'webp'}`), bytes));
    }
  }
}

await main(process.argv.slice(2));
