// Decodes each reference vector with the page's own decoder (static/thumbhash.js)
// and prints, as JSON, how far its pixels are from the reference's.
// Usage: node check-thumbhash.mjs <static/thumbhash.js> <vectors.json>
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [decoder, vectorsFile] = process.argv.slice(2);
const { decodeThumbHash } = await import(pathToFileURL(decoder).href);
const { vectors } = JSON.parse(readFileSync(vectorsFile, "utf8"));
const results = vectors.map(({ name, hash, width, height, rgba }) => {
  const expected = Buffer.from(rgba, "base64");
  const ours = decodeThumbHash(hash);
  let largestDifference = 0;
  for (let i = 0; i < expected.length; i++) largestDifference = Math.max(largestDifference, Math.abs(expected[i] - (ours?.pixels[i] ?? -1000)));
  return { name, size: [ours?.width, ours?.height], expectedSize: [width, height], largestDifference };
});
console.log(JSON.stringify(results));
