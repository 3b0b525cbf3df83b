/** The `backends` section: the model servers requests are routed to, each name used once. */
import * as v from 'valibot'
import { httpUrl, int, name, oneOf, str, stringList } from './fields.ts'
import { duplicateNames, itemCheck } from './items.ts'

export const DEFAULT_BACKEND = { name: 'ollama', type: 'ollama', url: 'http://127.0.0.1:11434' } as const

const backendEntry = v.strictObject(
  {
    name: name('Unique backend name'),
    type: v.optional(oneOf(['ollama', 'openai'], 'API the backend speaks: ollama or openai (OpenAI-compatible)'), 'ollama'),
    url: httpUrl('Base URL, e.g. http://127.0.0.1:11434', { example: 'http://127.0.0.1:11434' }),
    models: v.optional(stringList('Models this backend serves; unset means any model', { example: ['llama3.2'] })),
    concurrency: v.optional(
      int(
        'Calls in flight to this backend at once (its own limit; backends add up)',
        {},
        { defaultText: 'runtime.<type>.concurrency, else 4' },
      ),
    ),
    api_key_env: v.optional(
      str('Environment variable holding the bearer token orch sends to this backend (the token itself stays out of the file)', {
        example: 'VLLM_API_KEY',
      }),
    ),
  },
  'expected a mapping of backend keys to values',
)

export function backendsSchema() {
  return v.pipe(
    v.array(backendEntry, 'expected a list of backends'),
    itemCheck((items) => duplicateNames(items, 'backend')),
    // No backends at all means the local Ollama; ORCH_OLLAMA_URL moves it.
    v.transform((list) => (list.length > 0 ? list : [{ ...DEFAULT_BACKEND } as (typeof list)[number]])),
    v.description('Model servers requests are routed to; empty means one Ollama at http://127.0.0.1:11434 (or ORCH_OLLAMA_URL)'),
    v.metadata({ kind: 'list' as const, type: 'list of backends' }),
  )
}
