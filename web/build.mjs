// Build the web UI into statehub/web/static/ (committed, shipped as package data).
// Run through `make web`; the hub itself never needs Node.
import { build } from 'esbuild'
import { copyFileSync, mkdirSync } from 'node:fs'

const out = new URL('../statehub/web/static/', import.meta.url).pathname
mkdirSync(out, { recursive: true })
await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  format: 'esm',
  minify: true,
  sourcemap: false,
  target: ['es2020'],
  legalComments: 'none',
  outfile: out + 'app.js',
  logLevel: 'info'
})
copyFileSync('src/index.html', out + 'index.html')
copyFileSync('src/style.css', out + 'style.css')
// The API viewer at /schema loads Swagger UI from here, never from a CDN (it works offline).
mkdirSync(out + 'schema', { recursive: true })
for (const name of ['swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js', 'swagger-ui.css']) {
  copyFileSync('node_modules/swagger-ui-dist/' + name, out + 'schema/' + name)
}
