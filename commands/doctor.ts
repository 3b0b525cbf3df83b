/**
 * `orch doctor`: check the machine and the configuration, and say the fix for each problem. Exit 1 when any
 * check is an error; warnings do not fail it.
 */

import { ExitCode } from '../src/core/errors.ts'
import { type DoctorReport, type Finding, planDoctor } from '../src/doctor/checks.ts'
import { gatherFacts } from '../src/doctor/run.ts'
import { defineOrchCommand, type GlobalArgValues, globalArgs, printJson, printText } from './_args.ts'
import { runInBunMode } from './_bun-mode.ts'
import { loadConfig } from './_config.ts'
import { tableLines } from './_table.ts'

const MARK: Record<Finding['status'], string> = { ok: 'ok', warning: 'warn', error: 'ERROR' }

export function formatReport(report: DoctorReport): string {
  const [head = '', ...rows] = tableLines(
    [['STATUS', 'CHECK', 'DETAIL'], ...report.findings.map((f) => [MARK[f.status], f.title, f.detail])],
    {
      gap: [1, 2],
    },
  )
  // A fix goes under its finding's detail.
  const fixIndent = ' '.repeat(head.indexOf('DETAIL'))
  const lines = [head]
  report.findings.forEach((f, i) => {
    lines.push(rows[i] as string)
    if (f.fix) lines.push(`${fixIndent}fix: ${f.fix}`)
  })
  const count = (s: Finding['status']) => report.findings.filter((f) => f.status === s).length
  const errors = count('error')
  const warnings = count('warning')
  lines.push(
    '',
    `${count('ok')} ok, ${warnings} warning${warnings === 1 ? '' : 's'}, ${errors} error${errors === 1 ? '' : 's'}${errors > 0 ? ': apply the fixes above' : ''}`,
  )
  return lines.join('\n')
}

/** Does the configuration have a llamacpp pool? False when it cannot be read (doctor reports that itself). */
function usesLlamacpp(args: GlobalArgValues): boolean {
  try {
    return loadConfig(args).config.pools.some((p) => p.profile === 'llamacpp')
  } catch {
    return false
  }
}

export default defineOrchCommand({
  meta: { name: 'doctor', description: 'Check the machine and the configuration, with the fix for each problem' },
  args: { ...globalArgs },
  examples: ['orch doctor', 'orch doctor --json', 'orch doctor --config orch.prod.yaml --home /var/lib/orch'],
  async run({ args }) {
    // The engine check loads node-llama-cpp, which the compiled binary can only do in bun mode.
    if (usesLlamacpp(args)) {
      const relaunched = await runInBunMode()
      if (relaunched !== undefined) return relaunched
    }
    const facts = await gatherFacts({ configFile: args.config, envName: args.env, home: args.home })
    const report = planDoctor(facts)
    if (args.json) printJson(report)
    else printText(formatReport(report))
    return report.ok ? ExitCode.ok : ExitCode.failure
  },
})
