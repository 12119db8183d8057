/**
 * The cell tags of the promoter contract (DESIGN.md section 1), as pure list helpers.
 */

/** The tags the "Promoter Cell Role" commands toggle. */
export const ROLE_TAGS = ['parameters', 'setup', 'response', 'skip'] as const;

/** One of the contract's cell tags. */
export type RoleTag = (typeof ROLE_TAGS)[number];

/** Tags a notebook may carry on one cell only. */
export const UNIQUE_TAGS: ReadonlySet<string> = new Set([
  'parameters',
  'response'
]);

/** Whether a cell's tags (possibly missing) include `tag`. */
export function hasTag(tags: unknown, tag: string): boolean {
  return Array.isArray(tags) && tags.includes(tag);
}

/** The tags without `tag`. */
export function withoutTag(tags: unknown, tag: string): string[] {
  return Array.isArray(tags)
    ? tags.filter(t => typeof t === 'string' && t !== tag)
    : [];
}

/**
 * The tags after toggling the role `tag` on one cell: removed when present, otherwise added
 * in place of any other role tag (a cell has one role). Non-role tags are kept.
 */
export function toggleRole(tags: unknown, tag: RoleTag): string[] {
  if (hasTag(tags, tag)) {
    return withoutTag(tags, tag);
  }
  const roles: ReadonlySet<string> = new Set(ROLE_TAGS);
  const kept = Array.isArray(tags)
    ? tags.filter(t => typeof t === 'string' && !roles.has(t))
    : [];
  return [...kept, tag];
}
