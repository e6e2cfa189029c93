import { z } from 'zod';
import { ADMIN_USER } from './htpasswd.js';

/**
 * Who may do what where. Without an access file every authenticated user may pull, push and
 * delete everywhere; anonymous callers may pull when anonymous pull is on, and never more.
 * With an access file (JSON) authenticated users get the union of the actions of the rules
 * that name them (or `"*"`, any authenticated user) and match the repository:
 *
 * ```json
 * { "rules": [
 *   { "users": ["osbs"], "repositories": ["fedora/**"], "actions": ["pull", "push"] },
 *   { "users": ["*"], "repositories": ["**"], "actions": ["pull"] } ] }
 * ```
 *
 * Globs: `*` matches within one path component, `**` across components. `admin` may always do
 * everything.
 */
export type Action = 'pull' | 'push' | 'delete';

export const accessFileSchema = z.object({
  rules: z.array(
    z.object({
      users: z.array(z.string().min(1)).min(1),
      repositories: z.array(z.string().min(1)).min(1),
      actions: z.array(z.enum(['pull', 'push', 'delete'])).min(1),
    }),
  ),
});

export type AccessFile = z.infer<typeof accessFileSchema>;

export interface AccessPolicy {
  /** Anonymous callers may pull (and only pull). */
  readonly anonymousPull: boolean;
  /** `user` undefined = anonymous. */
  allows(user: string | undefined, repository: string, action: Action): boolean;
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        source += '.*';
        i++;
      } else source += '[^/]*';
    } else source += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

export function createAccessPolicy(options: {
  anonymousPull: boolean;
  accessFile?: AccessFile;
}): AccessPolicy {
  const rules = options.accessFile?.rules.map((rule) => ({
    users: new Set(rule.users),
    repositories: rule.repositories.map(globToRegExp),
    actions: new Set<Action>(rule.actions),
  }));
  return {
    anonymousPull: options.anonymousPull,
    allows(user, repository, action) {
      if (user === undefined) return action === 'pull' && options.anonymousPull;
      if (user === ADMIN_USER) return true;
      if (!rules) return true;
      return rules.some(
        (rule) =>
          (rule.users.has(user) || rule.users.has('*')) &&
          rule.actions.has(action) &&
          rule.repositories.some((re) => re.test(repository)),
      );
    },
  };
}
