// State Hub web UI: #/ is the dashboard, #/edit/<repo slug>/<path>?user=NAME the manifest editor.
import { renderDashboard } from './dashboard.js'
import { renderEditor } from './editor.js'
import { escapeHtml as h } from './hub.js'

const root = document.getElementById('app')
let leave = null

function whoAmI (params) {
  const given = params.get('user')
  if (given) localStorage.setItem('statehub.user', given)
  return given || localStorage.getItem('statehub.user')
}

function askName (then) {
  root.innerHTML = `<section><h2>Who are you?</h2>
    <p class="muted">Your name shows to the others in the room and becomes the author of the commits you save.</p>
    <form id="who"><input id="who-name" placeholder="your name" required> <button class="primary">Continue</button></form></section>`
  root.querySelector('#who').addEventListener('submit', (event) => {
    event.preventDefault()
    const name = root.querySelector('#who-name').value.trim()
    if (name) { localStorage.setItem('statehub.user', name); then(name) }
  })
}

async function route () {
  if (leave) { leave(); leave = null }
  const [path, query] = location.hash.replace(/^#/, '').split('?')
  const params = new URLSearchParams(query || '')
  try {
    if (path.startsWith('/edit/')) {
      const doc = decodeURIComponent(path.slice('/edit/'.length))
      const user = whoAmI(params)
      if (user) leave = renderEditor(root, doc, user)
      else askName((name) => { leave = renderEditor(root, doc, name) })
    } else {
      await renderDashboard(root)
    }
  } catch (error) {
    root.innerHTML = `<section class="bad">Could not load: ${h(error.message)}</section>`
  }
}

window.addEventListener('hashchange', route)
route()
