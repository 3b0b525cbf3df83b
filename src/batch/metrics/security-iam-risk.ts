import * as v from 'valibot'
import { Bool, first, type MetricResult, Num, opt, Scoring, Str } from './shared.ts'

const User = v.looseObject({ name: opt(Str), mfa: opt(Bool), mfa_enabled: opt(Bool), access_key_age_days: opt(Num), admin: opt(Bool) })
const Policy = v.looseObject({
  name: opt(Str),
  wildcard: opt(Bool),
  actions: opt(v.array(v.string())),
  resources: opt(v.array(v.string())),
})
const Input = v.looseObject({
  users: opt(v.array(v.unknown())),
  policies: opt(v.array(v.unknown())),
  root_mfa: opt(Bool),
  root_access_keys: opt(Bool),
  key_max_age_days: opt(Num),
})

export function scoreSecurityIamRisk(input: unknown): MetricResult {
  const s = new Scoring('security.iam_risk')
  const root = s.root(Input, input)
  if (!root) return s.none('input is not an object')
  if (!root.users && !root.policies && root.root_mfa === undefined) return s.none('users, policies and root_mfa all missing')
  const users = s.items(User, s.need(root.users, 'users', 0.25), 'users')
  const policies = s.items(Policy, s.need(root.policies, 'policies', 0.15), 'policies')
  const maxAge = root.key_max_age_days ?? 90
  const noMfa = users.filter((u) => first(u.mfa, u.mfa_enabled) === false).map((u) => u.name ?? '?')
  const oldKeys = users.filter((u) => (u.access_key_age_days ?? 0) > maxAge).map((u) => u.name ?? '?')
  const wildcard = policies
    .filter((p) => first(p.wildcard, p.actions?.includes('*') && (p.resources ?? ['*']).includes('*')) === true)
    .map((p) => p.name ?? '?')
  if (root.root_mfa === undefined) s.gap('root_mfa missing', 0.1)
  if (root.root_access_keys === undefined) s.gap('root_access_keys missing', 0.1)
  // Root without MFA or with access keys is the account's master key lying around; per-user findings are capped.
  const penalties = {
    root_without_mfa: root.root_mfa === false ? 2 : 0,
    root_access_keys: root.root_access_keys === true ? 2 : 0,
    users_without_mfa: Math.min(1.5, noMfa.length * 0.3),
    stale_access_keys: Math.min(1, oldKeys.length * 0.2),
    wildcard_policies: Math.min(1.5, wildcard.length * 0.5),
  }
  const total = Object.values(penalties).reduce((a, b) => a + b, 0)
  const found = Object.entries(penalties).filter(([, p]) => p > 0)
  return s.done(
    5 - total,
    found.length === 0
      ? `No IAM risk found among ${users.length} user(s) and ${policies.length} policy(ies).`
      : `IAM risks: ${found.map(([k, p]) => `${k.replaceAll('_', ' ')} (-${Math.round(p * 10) / 10})`).join(', ')}.`,
    {
      users: users.length,
      policies: policies.length,
      users_without_mfa: noMfa,
      stale_access_keys: oldKeys,
      wildcard_policies: wildcard,
      penalties,
    },
  )
}
