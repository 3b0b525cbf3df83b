/** The Ollama test double in its own process, for scripts/bench/serve.ts. Prints {url}. */
import { startFakeOllama } from '../../../test/helpers/fake-ollama.ts'

const fake = await startFakeOllama({ models: ['llama3.2'] })
console.log(JSON.stringify({ url: fake.url }))
