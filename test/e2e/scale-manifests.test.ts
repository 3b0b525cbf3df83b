import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import YAML from 'yaml'
import { runCli, tempDir } from '../helpers/cli.ts'
import { composeProblems, kubernetesDocuments, kubernetesProblem } from '../helpers/manifest-schemas.ts'

const TOKEN = 'token-of-the-e2e-test-0123456789'
const work = tempDir('orch-scale-manifests-')
writeFileSync(
  join(work.path, 'cluster.yaml'),
  `server:\n  token: ${TOKEN}\ninfrastructure_system:\n  distributed_simulation:\n    redis_url: redis://redis.internal:6379\n`,
)
afterAll(() => work.cleanup())

const run = (args: string[]) => runCli(['scale', 'manifests', ...args], { cwd: work.path })

/** The files of the stdout form: `# ==> PATH <==` then the file. */
function splitPrinted(stdout: string): Record<string, string> {
  const files: Record<string, string> = {}
  for (const part of stdout.split(/^# ==> /m).slice(1)) {
    const newline = part.indexOf('\n')
    files[part.slice(0, newline).replace(/ <==$/, '')] = part.slice(newline + 1)
  }
  return files
}

describe('orch scale manifests', () => {
  test('compose on stdout: every file after a line naming it; compose.yaml valid by the Compose schema; no secret', async () => {
    const result = await run(['--format', 'compose', '--instances', '3', '--config', 'cluster.yaml'])
    expect(result.code).toBe(0)
    const files = splitPrinted(result.stdout)
    expect(Object.keys(files)).toEqual(['compose.yaml', 'orch.yaml', 'orch.env.example', 'Dockerfile', 'Dockerfile.dockerignore'])
    const compose = YAML.parse(files['compose.yaml'] as string)
    expect(composeProblems(compose)).toEqual([])
    expect(compose.services.worker.deploy.replicas).toBe(3)
    expect(result.stdout).not.toContain(TOKEN)
    expect(files.Dockerfile).toContain('RUN npm run build')
    expect(files.Dockerfile).toMatch(/^USER 10001:10001$/m)
    expect(files.Dockerfile).toMatch(/^HEALTHCHECK /m)
  })

  test('k8s --out DIR: writes the files, lists them with --json, refuses to overwrite (exit 2) unless --force', async () => {
    const args = ['--format', 'k8s', '--instances', '3', '--keda', '--config', 'cluster.yaml', '--out', 'deploy']
    const first = await run([...args, '--json'])
    expect(first.code).toBe(0)
    const { written } = first.json<{ written: string[] }>()
    expect(written).toEqual([
      'deploy/k8s/configmap.yaml',
      'deploy/k8s/serve.yaml',
      'deploy/k8s/worker.yaml',
      'deploy/k8s/ollama.yaml',
      'deploy/secrets.example.yaml',
      'deploy/Dockerfile',
      'deploy/Dockerfile.dockerignore',
    ])
    const objects = written
      .filter((p) => p.startsWith('deploy/k8s/'))
      .flatMap((p) => kubernetesDocuments(readFileSync(join(work.path, p), 'utf8')))
    expect(objects.map(kubernetesProblem).filter(Boolean)).toEqual([])
    expect(objects.find((o) => o.kind === 'ScaledObject')?.spec.triggers[0].metadata.listName).toBe('orch:ready')
    expect(objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'orch-worker')?.spec.replicas).toBe(3)

    const configMap = join(work.path, 'deploy/k8s/configmap.yaml')
    writeFileSync(configMap, '# edited by hand\n')
    const again = await run(args)
    expect(again.code).toBe(2)
    expect(again.stderr).toContain('not overwriting files that exist: ')
    expect(again.stderr).toContain('hint: pass --force')
    expect(readFileSync(configMap, 'utf8')).toBe('# edited by hand\n')

    const forced = await run([...args, '--force'])
    expect(forced.code).toBe(0)
    expect(forced.stdout).toContain('wrote deploy/k8s/configmap.yaml')
    expect(readFileSync(configMap, 'utf8')).toContain('kind: ConfigMap')
  })

  test('the generated orch.yaml passes orch config validate', async () => {
    const out = await run(['--format', 'compose', '--instances', '2', '--config', 'cluster.yaml', '--out', 'compose'])
    expect(out.code).toBe(0)
    expect(existsSync(join(work.path, 'compose/orch.yaml'))).toBe(true)
    const validate = await runCli(['config', 'validate', 'compose/orch.yaml'], { cwd: work.path })
    expect(validate.stderr).toBe('')
    expect(validate.code).toBe(0)
  })

  test('bad flags: exit 2, one clear message, no stack trace', async () => {
    for (const [args, message] of [
      [['--format', 'swarm', '--instances', '3'], 'error: --format: expected compose or k8s, got "swarm"'],
      [['--format', 'k8s', '--instances', '0'], 'error: --instances: expected a whole number from 1 to 1000, got "0"'],
      [['--format', 'k8s', '--instances', '5000'], 'got "5000"'],
      [['--format', 'compose', '--instances', '2', '--keda'], 'error: --keda: only with --format k8s'],
    ] as const) {
      const result = await run([...args])
      expect(result.code).toBe(2)
      expect(result.stderr).toContain(message)
      expect(result.stderr).not.toContain('    at ')
    }
    const loopback = await run(['--format', 'k8s', '--instances', '2'])
    expect(loopback.code).toBe(2)
    expect(loopback.stderr).toContain('--with-redis')
  })

  test('orch scale --help lists manifests beside status and set', async () => {
    const help = await runCli(['scale', '--help'], { cwd: work.path })
    expect(help.code).toBe(0)
    for (const name of ['manifests', 'status', 'set']) expect(help.stdout).toContain(name)
    expect((await runCli(['--help'], { cwd: work.path })).stdout).toMatch(/^ {2}scale {7}/m)
  })
})
