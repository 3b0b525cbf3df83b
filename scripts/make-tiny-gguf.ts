/**
 * Writes a tiny random-weight llama model in the GGUF format, for tests and benchmarks that need real
 * inference without a download:
 *
 *   bun scripts/make-tiny-gguf.ts OUT.gguf [--seed N]
 *
 * The model: llama architecture, 2 layers, embedding 64, 4 heads, feed-forward 128, every tensor F32, and a
 * SentencePiece (`llama`) vocabulary of 260 tokens: `<unk>`, `<s>`, `</s>`, the word-start token `▁`
 * (U+2581; without it llama.cpp warns that tokenization does not round-trip) and the 256 byte tokens
 * `<0x00>`…`<0xFF>`. About 470 KB. The weights come from a fixed-seed generator, so one seed always gives
 * the same file and, at temperature 0, the same tokens; the text it generates is gibberish. The output
 * weights of `<unk>`, `<s>` and `</s>` are zero: their logit is always 0 while the largest of the 257 others
 * is above 0, so at temperature 0 an answer never ends before its num_predict tokens (tests count them).
 *
 * The format (GGUF version 3, little-endian): the magic `GGUF`, the version, the tensor and key counts, the
 * metadata (key, type, value), the tensor descriptions (name, dimensions, type, offset), padding to the
 * alignment (32), then each tensor's data at its offset.
 */
import { writeFileSync } from 'node:fs'
import { prng } from '../test/helpers/prng.ts'

/** The shape of the tests' model; `--shape` (or the `shape` argument) writes a larger one of the same kind. */
export interface Shape {
  layers: number
  embedding: number
  heads: number
  feedForward: number
  context: number
  vocab: number
}

/** A model whose tokens cost what a small real model's do (a few ms on one CPU core), for benchmarks. */
export const SMALL: Shape = { layers: 8, embedding: 512, heads: 8, feedForward: 1536, context: 2048, vocab: 260 }

export const TINY = {
  layers: 2,
  embedding: 64,
  heads: 4,
  feedForward: 128,
  context: 2048,
  vocab: 260,
} as const

const ALIGNMENT = 32
const T_UINT32 = 4
const T_INT32 = 5
const T_FLOAT32 = 6
const T_STRING = 8
const T_ARRAY = 9
const GGML_F32 = 0

/** Token types of a SentencePiece vocabulary, as llama.cpp reads them. */
const TOKEN_NORMAL = 1
const TOKEN_UNKNOWN = 2
const TOKEN_CONTROL = 3
const TOKEN_BYTE = 6

type Value =
  | { type: 'u32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'str'; value: string }
  | { type: 'strs'; value: string[] }
  | { type: 'f32s'; value: number[] }
  | { type: 'i32s'; value: number[] }

class Writer {
  private chunks: Uint8Array[] = []
  size = 0
  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes)
    this.size += bytes.length
  }
  private scalar(size: number, set: (view: DataView) => void): void {
    const bytes = new Uint8Array(size)
    set(new DataView(bytes.buffer))
    this.push(bytes)
  }
  u32(n: number): void {
    this.scalar(4, (v) => v.setUint32(0, n, true))
  }
  i32(n: number): void {
    this.scalar(4, (v) => v.setInt32(0, n, true))
  }
  u64(n: number): void {
    this.scalar(8, (v) => v.setBigUint64(0, BigInt(n), true))
  }
  f32(n: number): void {
    this.scalar(4, (v) => v.setFloat32(0, n, true))
  }
  str(s: string): void {
    const bytes = new TextEncoder().encode(s)
    this.u64(bytes.length)
    this.push(bytes)
  }
  bytes(b: Uint8Array): void {
    this.push(b)
  }
  pad(): void {
    const rest = this.size % ALIGNMENT
    if (rest !== 0) this.push(new Uint8Array(ALIGNMENT - rest))
  }
  value(v: Value): void {
    switch (v.type) {
      case 'u32':
        this.u32(T_UINT32)
        this.u32(v.value)
        return
      case 'f32':
        this.u32(T_FLOAT32)
        this.f32(v.value)
        return
      case 'str':
        this.u32(T_STRING)
        this.str(v.value)
        return
      case 'strs':
        this.u32(T_ARRAY)
        this.u32(T_STRING)
        this.u64(v.value.length)
        for (const s of v.value) this.str(s)
        return
      case 'f32s':
        this.u32(T_ARRAY)
        this.u32(T_FLOAT32)
        this.u64(v.value.length)
        for (const n of v.value) this.f32(n)
        return
      case 'i32s':
        this.u32(T_ARRAY)
        this.u32(T_INT32)
        this.u64(v.value.length)
        for (const n of v.value) this.i32(n)
        return
    }
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.size)
    let at = 0
    for (const c of this.chunks) {
      out.set(c, at)
      at += c.length
    }
    return out
  }
}

function vocabulary(): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>', '\u2581']
  const types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL, TOKEN_NORMAL]
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
    types.push(TOKEN_BYTE)
  }
  return { tokens, scores: tokens.map((_, i) => (i === 3 ? -1 : 0)), types }
}

interface Tensor {
  name: string
  /** ggml order: the first dimension varies fastest. */
  dims: number[]
  /** A norm's weights are 1; the rest random. */
  ones?: boolean
  /** Elements set to 0 (the output rows of the control tokens). */
  zeroFirst?: number
}

function tensors(shape: Shape): Tensor[] {
  const { embedding: e, feedForward: f, vocab: n, layers } = shape
  const list: Tensor[] = [
    { name: 'token_embd.weight', dims: [e, n] },
    { name: 'output_norm.weight', dims: [e], ones: true },
    { name: 'output.weight', dims: [e, n], zeroFirst: 3 * e },
  ]
  for (let i = 0; i < layers; i++) {
    list.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [e], ones: true },
      { name: `blk.${i}.attn_q.weight`, dims: [e, e] },
      { name: `blk.${i}.attn_k.weight`, dims: [e, e] },
      { name: `blk.${i}.attn_v.weight`, dims: [e, e] },
      { name: `blk.${i}.attn_output.weight`, dims: [e, e] },
      { name: `blk.${i}.ffn_norm.weight`, dims: [e], ones: true },
      { name: `blk.${i}.ffn_gate.weight`, dims: [e, f] },
      { name: `blk.${i}.ffn_down.weight`, dims: [f, e] },
      { name: `blk.${i}.ffn_up.weight`, dims: [e, f] },
    )
  }
  return list
}

/** The bytes of the tiny model for `seed`. */
export function tinyGguf(seed = 42, shape: Shape = TINY): Uint8Array {
  const vocab = vocabulary()
  const meta: [string, Value][] = [
    ['general.architecture', { type: 'str', value: 'llama' }],
    ['general.name', { type: 'str', value: 'orch-tiny' }],
    ['general.file_type', { type: 'u32', value: 0 }],
    ['general.alignment', { type: 'u32', value: ALIGNMENT }],
    ['llama.context_length', { type: 'u32', value: shape.context }],
    ['llama.embedding_length', { type: 'u32', value: shape.embedding }],
    ['llama.block_count', { type: 'u32', value: shape.layers }],
    ['llama.feed_forward_length', { type: 'u32', value: shape.feedForward }],
    ['llama.attention.head_count', { type: 'u32', value: shape.heads }],
    ['llama.attention.head_count_kv', { type: 'u32', value: shape.heads }],
    ['llama.rope.dimension_count', { type: 'u32', value: shape.embedding / shape.heads }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
    ['tokenizer.ggml.model', { type: 'str', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'strs', value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: 'f32s', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: 'i32s', value: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: 0 }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
  ]
  const list = tensors(shape)
  const w = new Writer()
  w.bytes(new TextEncoder().encode('GGUF'))
  w.u32(3)
  w.u64(list.length)
  w.u64(meta.length)
  for (const [key, value] of meta) {
    w.str(key)
    w.value(value)
  }
  let offset = 0
  const sizes = list.map((t) => t.dims.reduce((a, b) => a * b, 1) * 4)
  list.forEach((t, i) => {
    w.str(t.name)
    w.u32(t.dims.length)
    for (const d of t.dims) w.u64(d)
    w.u32(GGML_F32)
    w.u64(offset)
    offset += Math.ceil((sizes[i] ?? 0) / ALIGNMENT) * ALIGNMENT
  })
  w.pad()
  const random = prng(seed)
  list.forEach((t, i) => {
    const size = sizes[i] ?? 0
    const data = new Float32Array(size / 4)
    for (let j = 0; j < data.length; j++) {
      const value = t.ones ? 1 : (random() * 2 - 1) * 0.5
      data[j] = j < (t.zeroFirst ?? 0) ? 0 : value
    }
    w.bytes(new Uint8Array(data.buffer))
    w.pad()
  })
  return w.concat()
}

export function writeTinyGguf(path: string, seed = 42, shape: Shape = TINY): number {
  const bytes = tinyGguf(seed, shape)
  writeFileSync(path, bytes)
  return bytes.length
}

if (import.meta.main) {
  const { parseArgs } = await import('node:util')
  const usage = 'usage: bun scripts/make-tiny-gguf.ts OUT.gguf [--seed N] [--shape tiny|small]'
  let parsed: ReturnType<typeof parseArgs<{ options: { seed: { type: 'string' }; shape: { type: 'string' } }; allowPositionals: true }>>
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      options: { seed: { type: 'string' }, shape: { type: 'string' } },
      allowPositionals: true,
    })
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`)
    process.exit(2)
  }
  const seed = Number(parsed.values.seed ?? 42)
  const shapes: Record<string, Shape> = { tiny: TINY, small: SMALL }
  const shape = shapes[parsed.values.shape ?? 'tiny']
  const out = parsed.positionals[0]
  if (!out || parsed.positionals.length > 1 || !Number.isInteger(seed) || !shape) {
    console.error(usage)
    process.exit(2)
  }
  const size = writeTinyGguf(out, seed, shape)
  console.log(`${out}: ${size} bytes (llama, ${shape.layers} layers, embedding ${shape.embedding}, vocab ${shape.vocab}, seed ${seed})`)
}
