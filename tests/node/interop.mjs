// A stock Yjs client against State Hub: yjs + y-websocket's WebsocketProvider, nothing of ours.
// Usage: node interop.mjs ws://127.0.0.1:PORT/sync demo/statehub.toml [ws://127.0.0.1:OTHER/sync]
// (with a second URL, node-b joins through that server: another replica of the same hub)
// Two providers join the room, each edits the "manifest" Y.Text, and both must converge on
// the same text holding both edits and see each other's presence. Each records the State Hub
// messages (type 100) it gets, as our editor reads them. Prints one JSON line:
// {"ok", "text", "awareness", "hubMessages"}.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as decoding from 'lib0/decoding'

const [serverUrl, room, otherUrl] = process.argv.slice(2)
const deadline = Date.now() + 10000

function connect (user, url = serverUrl) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, room, doc, {
    WebSocketPolyfill: WebSocket,
    params: { user },
    disableBc: true
  })
  const hubMessages = []
  provider.messageHandlers[100] = (_encoder, decoder) => hubMessages.push(JSON.parse(decoding.readVarString(decoder)))
  const client = { doc, provider, hubMessages, awarenessMessages: 0, text: doc.getText('manifest') }
  const applyAwareness = provider.messageHandlers[1]
  provider.messageHandlers[1] = (...args) => {
    client.awarenessMessages++
    applyAwareness(...args)
  }
  provider.awareness.setLocalStateField('user', { name: user, color: '#3366cc' })
  return client
}

// A query-awareness (type 3) and its answer: whatever the hub said about what the client
// sent before it (an echo of the other's presence, say) has arrived by then.
async function roundTrip (client) {
  const before = client.awarenessMessages
  client.provider.ws.send(Uint8Array.of(3))
  await until(() => client.awarenessMessages > before, 'the answer to a query-awareness')
}

function synced (client) {
  return new Promise((resolve) => {
    if (client.provider.synced) resolve()
    else client.provider.once('sync', (isSynced) => isSynced && resolve())
  })
}

async function until (predicate, what) {
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const a = connect('node-a')
const b = connect('node-b', otherUrl || serverUrl)
await Promise.all([synced(a), synced(b)])
const start = a.text.toString()
if (start.length === 0) throw new Error('the room sent no text: is the manifest empty?')
if (b.text.toString() !== start) throw new Error('the two clients started from different texts')

a.text.insert(0, '# from node-a\n')
b.text.insert(b.text.length, '# from node-b\n')
await until(() => a.text.toString() === b.text.toString() &&
  a.text.toString().includes('node-a') && a.text.toString().includes('node-b'), 'convergence')
await until(() => a.provider.awareness.getStates().size >= 2, 'presence of the other client')
await until(() => b.provider.awareness.getStates().size >= 2, 'presence of the other client')
await roundTrip(a)
await roundTrip(b)

console.log(JSON.stringify({
  ok: true,
  text: a.text.toString(),
  awareness: [...a.provider.awareness.getStates().values()].map((s) => s.user && s.user.name).sort(),
  hubMessages: [...a.hubMessages, ...b.hubMessages]
}))
a.provider.destroy()
b.provider.destroy()
process.exit(0)
