// Builds index.js into a WebAssembly component (called by build.sh):
//   node componentize.mjs TOOLS_DIR WIT_FILE WORLD SOURCE OUT_FILE
// StarlingMonkey's `http` and `fetch-event` features are left out: no Cairn
// world imports `wasi:http`, and Cairn does not link it.

import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [toolsDir, witPath, worldName, source, outFile] = process.argv.slice(2);
const entry = join(toolsDir, 'node_modules/@bytecodealliance/componentize-js/src/componentize.js');
const { componentize } = await import(pathToFileURL(entry).href);
const { component } = await componentize({
    sourcePath: resolve(source),
    witPath: resolve(witPath),
    worldName,
    disableFeatures: ['http', 'fetch-event'],
});
await writeFile(outFile, component);
