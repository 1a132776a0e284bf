import { z } from 'zod';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';

/**
 * A label matcher, as Alertmanager's silences and routes use them: `name` equals `value`, or matches
 * it as a fully anchored regular expression when `isRegex`; `isEqual: false` negates.
 */
export const matcherSchema = z.strictObject({
  name: z.string().min(1),
  value: z.string(),
  isRegex: z.boolean().default(false),
  isEqual: z.boolean().default(true),
});

/** One label matcher (parsed). */
export type Matcher = z.output<typeof matcherSchema>;
/** One label matcher as written in config or a request. */
export type MatcherInput = z.input<typeof matcherSchema>;

/** A compiled matcher list: all must match. */
export type LabelPredicate = (labels: Readonly<Record<string, string>>) => boolean;

/**
 * Compiles `matchers` into one predicate. Regexes are anchored (`^(?:…)$`), as in Alertmanager; a
 * missing label counts as the empty string. Invalid regexes throw `config_invalid`.
 */
export function compileMatchers(matchers: readonly MatcherInput[], field = 'matchers'): LabelPredicate {
  const tests = matchers.map((m) => {
    const isEqual = m.isEqual ?? true;
    if (m.isRegex === true) {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${m.value})$`);
      } catch {
        throw new ModelwatchError(ErrorCodes.configInvalid, `${field}: invalid regular expression for ${m.name}`, {
          field,
        });
      }
      return (labels: Readonly<Record<string, string>>) => re.test(labels[m.name] ?? '') === isEqual;
    }
    return (labels: Readonly<Record<string, string>>) => ((labels[m.name] ?? '') === m.value) === isEqual;
  });
  return (labels) => tests.every((t) => t(labels));
}

/** `{a="x", b=~"y"}` for logs and group keys. */
export function formatMatchers(matchers: readonly MatcherInput[]): string {
  return `{${matchers.map((m) => `${m.name}${m.isEqual === false ? '!' : '='}${m.isRegex === true ? '~' : m.isEqual === false ? '=' : ''}${JSON.stringify(m.value)}`).join(', ')}}`;
}
