import { describe, expect, test } from 'bun:test'
import { collectChat, collectGenerate, joinChat, joinGenerate } from '../../src/backends/create.ts'
import type { ChatChunk, GenerateChunk } from '../../src/backends/types.ts'

// Chunks as a backend may send them: a role only on the first message, thinking before the answer.
const chat = (message: Partial<ChatChunk['message']>, done = false, extra: Partial<ChatChunk> = {}) =>
  ({ model: 'm', created_at: 't', message, done, ...extra }) as ChatChunk
const gen = (response: string, done = false, extra: Partial<GenerateChunk> = {}) =>
  ({ model: 'm', created_at: 't', response, done, ...extra }) as GenerateChunk

async function* stream<T>(chunks: T[]): AsyncGenerator<T> {
  for (const chunk of chunks) yield chunk
}

describe('joinChat', () => {
  test('the role comes from the first chunk that has one, the stats from the last', async () => {
    const chunks = [
      chat({ role: 'assistant', content: 'Hel' }),
      chat({ content: 'lo' }),
      chat({ content: '' }, true, { done_reason: 'stop', eval_count: 2 }),
    ]
    const want: ChatChunk = {
      model: 'm',
      created_at: 't',
      message: { role: 'assistant', content: 'Hello' },
      done: true,
      done_reason: 'stop',
      eval_count: 2,
    }
    expect(joinChat(chunks)).toEqual(want)
    expect(await collectChat(stream(chunks))).toEqual(want)
  })

  test('done is the last chunk’s: a stream cut before done is not made whole', async () => {
    const chunks = [chat({ role: 'assistant', content: 'a' }), chat({ role: 'assistant', content: 'b' })]
    expect(joinChat(chunks).done).toBe(false)
    expect((await collectChat(stream(chunks))).done).toBe(false)
  })

  test('thinking and tool calls of every chunk, in order; left out when there are none', async () => {
    const chunks = [
      chat({ role: 'assistant', content: '', thinking: 'let me ' }),
      chat({ content: '', thinking: 'see' }),
      chat({ content: '', tool_calls: [{ function: { name: 'a', arguments: {} } }] }),
      chat({ content: '', tool_calls: [{ function: { name: 'b', arguments: {} } }] }, true),
    ]
    const joined = await collectChat(stream(chunks))
    expect(joined.message.thinking).toBe('let me see')
    expect(joined.message.tool_calls).toEqual([{ function: { name: 'a', arguments: {} } }, { function: { name: 'b', arguments: {} } }])
    const single = joinChat([chat({ role: 'assistant', content: 'x', thinking: '', tool_calls: [] }, true)])
    expect(single.message).toEqual({ role: 'assistant', content: 'x' })
  })

  test('no chunk names a role: assistant', () => {
    expect(joinChat([chat({ content: 'a' }), chat({ content: 'b' }, true)]).message.role).toBe('assistant')
  })

  test('no chunks is a protocol error', async () => {
    expect(() => joinChat([])).toThrow('the backend answered with no chunks')
    await expect(collectChat(stream([]))).rejects.toThrow('the backend answered with no chunks')
  })
})

describe('joinGenerate', () => {
  test('response and thinking of every chunk, the context and stats of the last', async () => {
    const chunks = [
      gen('', false, { thinking: 'hmm ' }),
      gen('', false, { thinking: 'ok' }),
      gen('4'),
      gen('', true, { context: [1, 2], eval_count: 3 }),
    ]
    const want = { model: 'm', created_at: 't', response: '4', done: true, context: [1, 2], eval_count: 3, thinking: 'hmm ok' }
    expect(joinGenerate(chunks)).toEqual(want)
    expect(await collectGenerate(stream(chunks))).toEqual(want)
  })

  test('done is the last chunk’s', async () => {
    expect(joinGenerate([gen('a'), gen('b')])).toEqual({ model: 'm', created_at: 't', response: 'ab', done: false })
    expect((await collectGenerate(stream([gen('a'), gen('b')]))).done).toBe(false)
  })
})
