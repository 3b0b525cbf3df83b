/**
 * The Node.js version orch states (package.json `engines`, the README) is the one `npm install` really needs:
 * every package in the lockfile accepts it, so the install prints no EBADENGINE warning on it.
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import pkg from '../../package.json' with { type: 'json' }
import { ROOT } from '../helpers/cli.ts'

const match = /^>=(\d+)(?:\.(\d+))?$/.exec(pkg.engines.node)
/** The stated minimum as written (`20` or `20.12`) and as a full version. */
const stated = match ? (match[2] === undefined ? match[1] : `${match[1]}.${match[2]}`) : undefined
const major = Number(match?.[1])
const minor = Number(match?.[2] ?? 0)
const minimum = `${major}.${minor}.0`
/** The last release before the stated minimum. */
const below = minor > 0 ? `${major}.${minor - 1}.99` : `${major - 1}.99.99`
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { engines?: { node?: string } | string[] }>
}
const ranges = Object.entries(lock.packages).flatMap(([path, entry]) => {
  const node = Array.isArray(entry.engines) ? undefined : entry.engines?.node
  return path !== '' && node ? [[path, node] as const] : []
})

describe('the stated Node.js version', () => {
  test('engines.node is ">=MAJOR" or ">=MAJOR.MINOR", and the lockfile names some packages with a Node range', () => {
    expect(stated).toBeDefined()
    expect(ranges.length).toBeGreaterThan(0)
  })

  test('every package in the lockfile accepts the stated minimum', () => {
    const refused = ranges.filter(([, range]) => !Bun.semver.satisfies(minimum, range))
    expect(refused).toEqual([])
  })

  test('it is the real minimum: the release before it, some package refuses', () => {
    expect(ranges.some(([, range]) => !Bun.semver.satisfies(below, range))).toBe(true)
  })

  test('the README states the same version', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    expect(readme).toContain(`Node.js ${stated}+`)
    expect(readme).not.toMatch(/Node\.js \(?1[0-9]\+/)
  })
})
