/**
 * LangChain's Ollama integration (`@langchain/ollama`) pointed at a real `orch serve` (baseUrl = its URL)
 * in front of fake Ollama servers: ChatOllama invoke and stream, its pull-if-missing start, and
 * OllamaEmbeddings.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { ChatOllama, OllamaEmbeddings } from '@langchain/ollama'
import { fakeEmbedding } from '../helpers/fake-ollama.ts'
import { startTestServe, type TestServe } from '../helpers/serve.ts'

const T = 30_000
let t: TestServe

beforeAll(async () => {
  t = await startTestServe({ fakes: [{ models: ['llama3.2', 'nomic-embed-text'] }] })
})
afterAll(() => t?.stop())

const calls = (path: string) => t.fakes.flatMap((f) => f.calls.filter((c) => c.path === path))

describe('@langchain/ollama through orch serve', () => {
  test(
    'ChatOllama.invoke: the answer, with the token counts of the final chunk (7 words in, 5 out)',
    async () => {
      const chat = new ChatOllama({ baseUrl: t.url, model: 'llama3.2', temperature: 0.5 })
      const answer = await chat.invoke([
        ['system', 'be brief'],
        ['human', 'why is the sky blue'],
      ])
      expect(answer.content).toBe('why is the sky blue')
      expect(answer.usage_metadata).toMatchObject({ output_tokens: 5, input_tokens: 7 })
      const sent = calls('/api/chat').at(-1)?.body
      expect(sent).toMatchObject({ model: 'llama3.2', options: { temperature: 0.5 } })
      expect(sent.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user'])
    },
    T,
  )

  test(
    'ChatOllama.stream: the tokens as they come, joined the whole answer',
    async () => {
      const chat = new ChatOllama({ baseUrl: t.url, model: 'llama3.2' })
      const parts: string[] = []
      for await (const chunk of await chat.stream('one two three four')) parts.push(String(chunk.content))
      expect(parts.join('')).toBe('one two three four')
      expect(parts.filter(Boolean).length).toBe(4)
    },
    T,
  )

  test(
    'ChatOllama with checkOrPullModel pulls a missing model through orch, then answers with it',
    async () => {
      const log = console.log
      console.log = () => {}
      try {
        const chat = new ChatOllama({ baseUrl: t.url, model: 'mistral', checkOrPullModel: true })
        const answer = await chat.invoke('pulled on demand')
        expect(answer.content).toBe('pulled on demand')
      } finally {
        console.log = log
      }
      expect(calls('/api/pull').map((c) => c.body.name)).toEqual(['mistral'])
    },
    T,
  )

  test(
    'OllamaEmbeddings: a query and documents give the backend’s vectors',
    async () => {
      const embeddings = new OllamaEmbeddings({ baseUrl: t.url, model: 'nomic-embed-text' })
      expect(await embeddings.embedQuery('hello')).toEqual(fakeEmbedding('hello', 8))
      expect(await embeddings.embedDocuments(['a', 'b'])).toEqual([fakeEmbedding('a', 8), fakeEmbedding('b', 8)])
    },
    T,
  )
})
