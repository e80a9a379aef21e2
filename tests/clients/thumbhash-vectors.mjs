// Writes tests/fixtures/thumbhash/vectors.json: ThumbHashes made by the reference
// implementation (npm thumbhash, by Evan Wallace, MIT) from drawn images, each with
// the pixels the reference decodes it to. Run once, where that package is installed:
//   NODE_PATH=… node tests/clients/thumbhash-vectors.mjs  (an ES module: give it the package's path)
// Usage: node thumbhash-vectors.mjs <path to thumbhash.js of the package> <output file>
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [reference, output] = process.argv.slice(2);
const { rgbaToThumbHash, thumbHashToRGBA } = await import(pathToFileURL(reference).href);

// Drawn images: gradients, stripes, a disc on transparency, in several shapes.
function draw(width, height, pixel) {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rgba.set(pixel(x / width, y / height), (y * width + x) * 4);
  return { width, height, rgba };
}
const images = {
  "landscape gradient": draw(100, 60, (x, y) => [255 * x, 255 * y, 128, 255]),
  "portrait stripes": draw(50, 100, (x, y) => (Math.floor(y * 8) % 2 ? [240, 200, 40, 255] : [20, 60, 160, 255])),
  "square checkers": draw(80, 80, (x, y) => ((Math.floor(x * 4) + Math.floor(y * 4)) % 2 ? [250, 250, 250, 255] : [10, 10, 10, 255])),
  "disc on transparency": draw(90, 90, (x, y) => ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1 ? [200, 30, 30, 255] : [0, 0, 0, 0])),
  "wide half transparent": draw(100, 25, (x) => [30, 180, 90, Math.round(255 * x)]),
  "grey": draw(40, 40, () => [128, 128, 128, 255]),
};
const vectors = Object.entries(images).map(([name, image]) => {
  const hash = Buffer.from(rgbaToThumbHash(image.width, image.height, image.rgba)).toString("base64");
  const decoded = thumbHashToRGBA(Buffer.from(hash, "base64"));
  return { name, hash, width: decoded.w, height: decoded.h, rgba: Buffer.from(decoded.rgba).toString("base64") };
});
writeFileSync(output, `${JSON.stringify({ reference: "npm thumbhash 0.1.1 (MIT), thumbHashToRGBA", vectors }, null, 1)}\n`);
