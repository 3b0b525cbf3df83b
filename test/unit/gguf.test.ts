/**
 * The GGUF header reader (src/engine/gguf.ts) on the tiny model (scripts/make-tiny-gguf.ts) and on files that
 * are broken in each way a user meets: truncated, not GGUF, a future version, missing, a directory.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TINY, tinyGguf } from '../../scripts/make-tiny-gguf.ts'
import { GgufError, memoryEstimate, parameterSize, quantization, readGguf } from '../../src/engine/gguf.ts'
import { tempDir } from '../helpers/cli.ts'

const dir = tempDir('orch-gguf-')
afterAll(() => dir.cleanup())
const file = (name: string, bytes: Uint8Array | string) => {
  const path = join(dir.path, name)
  writeFileSync(path, bytes)
  return path
}

const reason = (path: string): string => {
  try {
    readGguf(path)
  } catch (err) {
    expect(err).toBeInstanceOf(GgufError)
    return (err as Error).message
  }
  throw new Error(`${path} was read as a valid GGUF`)
}

describe('the tiny model', () => {
  const bytes = tinyGguf()
  const info = readGguf(file('tiny.gguf', bytes))

  test('its header says what the writer put in', () => {
    expect(info.version).toBe(3)
    expect(info.architecture).toBe('llama')
    expect(info.name).toBe('orch-tiny')
    expect(info.blockCount).toBe(TINY.layers)
    expect(info.embeddingLength).toBe(TINY.embedding)
    expect(info.headCount).toBe(TINY.heads)
    expect(info.headCountKv).toBe(TINY.heads)
    expect(info.contextLength).toBe(TINY.context)
    expect(info.vocabSize).toBe(TINY.vocab)
    // 3 global tensors and 9 per layer.
    expect(info.tensorCount).toBe(3 + 9 * TINY.layers)
    const { embedding: e, feedForward: f, vocab: n, layers } = TINY
    expect(info.parameters).toBe(2 * e * n + e + layers * (4 * e * e + 3 * e * f + 2 * e))
    expect(info.fileBytes).toBe(bytes.length)
    expect(info.dataBytes).toBeGreaterThanOrEqual(info.parameters * 4)
    expect(bytes.length).toBeGreaterThan(400_000)
    expect(bytes.length).toBeLessThan(520_000)
    expect(quantization(info)).toBe('F32')
  })

  test('one seed gives the same bytes; another seed other weights, same header', () => {
    expect(Buffer.from(tinyGguf(42)).equals(Buffer.from(bytes))).toBe(true)
    const other = tinyGguf(7)
    expect(other.length).toBe(bytes.length)
    expect(Buffer.from(other).equals(Buffer.from(bytes))).toBe(false)
    expect(readGguf(file('seed7.gguf', other)).parameters).toBe(info.parameters)
  })

  test('memory estimate: weights plus 2 × layers × context × width × 2 bytes', () => {
    expect(memoryEstimate(info, 0)).toBe(info.dataBytes)
    expect(memoryEstimate(info, 1000) - memoryEstimate(info, 0)).toBe(2 * TINY.layers * 1000 * TINY.embedding * 2)
  })
})

describe('broken files get a sentence', () => {
  const bytes = tinyGguf()

  test('truncated inside the tensor data', () => {
    expect(reason(file('cut-data.gguf', bytes.subarray(0, bytes.length - 100)))).toMatch(/truncated/)
  })
  test('truncated inside the header', () => {
    expect(reason(file('cut-head.gguf', bytes.subarray(0, 5000)))).toMatch(/ends inside its header/)
  })
  test('not GGUF at all', () => {
    expect(reason(file('text.gguf', 'hello, this is not a model at all, just text'))).toMatch(/not a GGUF file/)
    expect(reason(file('empty.gguf', ''))).toMatch(/not a GGUF file/)
  })
  test('a version it does not read', () => {
    const v9 = Uint8Array.from(bytes)
    new DataView(v9.buffer).setUint32(4, 9, true)
    expect(reason(file('v9.gguf', v9))).toMatch(/version 9/)
  })
  test('a count in the header past what is possible', () => {
    const huge = Uint8Array.from(bytes)
    new DataView(huge.buffer).setBigUint64(16, 2n ** 62n, true)
    expect(reason(file('huge.gguf', huge))).toMatch(/out of range/)
  })
  test('missing, and a directory', () => {
    expect(reason(join(dir.path, 'nope.gguf'))).toBe('no such file')
    mkdirSync(join(dir.path, 'adir'))
    expect(reason(join(dir.path, 'adir'))).toBe('not a regular file')
  })
})

test('parameter sizes as Ollama shows them', () => {
  expect(parameterSize(115_520)).toBe('116K')
  expect(parameterSize(1_235_814_400)).toBe('1.2B')
  expect(parameterSize(7_615_616_512)).toBe('7.6B')
  expect(parameterSize(70_553_706_496)).toBe('71B')
  expect(parameterSize(999)).toBe('999')
})
