/** Import rules between orch's rooms (docs/architecture.md). `npm run deps` checks them. */

/**
 * The one direction of imports: a room may import from the rooms in the layers before its own, never from
 * a later one. Rooms in one layer do not import each other. `core` (errors, logging, small helpers) is
 * below everything.
 */
const LAYERS = [
  ['core'],
  ['config'],
  ['store', 'bus'],
  // The HTTP client of a running orch serve: low, so that batch (rationale over --url) and daemon may use it.
  ['client'],
  // The model engine (orch model-worker: node-llama-cpp behind Ollama's API) sits beside the backends.
  ['backends', 'engine'],
  ['cache'],
  ['scheduler'],
  ['tasks'],
  ['workflows', 'pool', 'metrics', 'batch', 'capacity'],
  // Autoscaling (sizes pools from the scheduler's and the queue's figures) and deployment manifests.
  ['scale'],
  ['daemon'],
  ['doctor'],
  ['server'],
]

function layerRules() {
  return LAYERS.flatMap((layer, i) =>
    layer.map((room) => {
      const later = LAYERS.slice(i + 1).flat()
      const peers = layer.filter((r) => r !== room)
      const banned = [...later, ...peers]
      return {
        name: `layer-${room}`,
        severity: 'error',
        comment: `src/${room}/ imports only from the rooms before it: ${LAYERS.slice(0, i).flat().join(', ') || 'none'}`,
        from: { path: `^src/${room}/` },
        to: { path: `^src/(${banned.join('|')})/` },
      }
    }),
  )
}

module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'No import cycle, inside a room or between rooms.',
      from: { path: '^(src|commands)/' },
      to: { circular: true },
    },
    ...layerRules(),
    {
      name: 'command-never-imports-command',
      severity: 'error',
      comment:
        'A command imports src/ and the shared commands/_*.ts helpers, never another command (commands/index.ts, the entry point, loads them).',
      from: { path: '^commands/', pathNot: '^commands/index[.]ts$' },
      to: { path: '^commands/', pathNot: '^commands/_[^/]*[.]ts$' },
    },
    {
      name: 'src-never-imports-commands',
      severity: 'error',
      comment: 'src/ is the library; commands/ is the shell on top of it.',
      from: { path: '^src/' },
      to: { path: '^commands/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
}
