// Build the web UI into statehub/web/static/ (committed, shipped as package data).
// Run through `make web`; the hub itself never needs Node.
//
// app.js is the entry; esbuild splits what only some views need into chunks/ (the editor with yjs
// and CodeMirror, the Markdown renderer), so the dashboard never loads them (ADR-041). Every
// text asset gets a .gz beside it, which statehub.api.web serves to browsers that accept gzip.
import { build } from 'esbuild'
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync, constants } from 'node:zlib'

const out = new URL('../statehub/web/static/', import.meta.url).pathname
rmSync(out + 'chunks', { recursive: true, force: true })
mkdirSync(out, { recursive: true })
await build({
  entryPoints: { app: 'src/main.js' },
  bundle: true,
  splitting: true,
  format: 'esm',
  minify: true,
  sourcemap: false,
  target: ['es2020'],
  legalComments: 'none',
  outdir: out,
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'info'
})
copyFileSync('src/index.html', out + 'index.html')
copyFileSync('src/style.css', out + 'style.css')
// The API viewer at /schema loads Swagger UI from here, never from a CDN (it works offline).
mkdirSync(out + 'schema', { recursive: true })
for (const name of ['swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js', 'swagger-ui.css']) {
  copyFileSync('node_modules/swagger-ui-dist/' + name, out + 'schema/' + name)
}
// Precompressed copies: level 9 once at build time costs nothing per request.
const walk = (dir) => readdirSync(dir).flatMap((name) => {
  const path = join(dir, name)
  return statSync(path).isDirectory() ? walk(path) : [path]
})
for (const path of walk(out)) {
  if (path.endsWith('.gz')) rmSync(path)
}
for (const path of walk(out)) {
  if (!/\.(js|css|html)$/.test(path)) continue
  writeFileSync(path + '.gz', gzipSync(readFileSync(path), { level: constants.Z_BEST_COMPRESSION, mtime: 0 }))
}
