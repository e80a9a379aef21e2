// Uploads one file with tus-js-client, the real client from npm, under Node.js,
// retrying through cut connections as it does for anyone; prints the upload's
// URL as JSON when it is whole. Usage: node tus-upload.cjs <endpoint> <file> <owner key>
'use strict';
const fs = require('fs');
const path = require('path');
const tus = require('tus-js-client');

const [endpoint, file, key] = process.argv.slice(2);
const upload = new tus.Upload(fs.readFileSync(file), {
  endpoint,
  headers: { Authorization: `Bearer ${key}` },
  metadata: { filename: path.basename(file), filetype: 'image/jpeg' },
  // Plenty of quick retries: the tests cut the connection on purpose.
  retryDelays: [0, 100, 200, 500, 1000, 1000, 2000, 2000, 3000, 3000, 5000, 5000],
  onError(error) {
    console.error(`tus-js-client failed: ${error}`);
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url }));
  },
});
upload.start();
