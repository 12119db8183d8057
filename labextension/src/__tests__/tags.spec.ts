import { hasTag, toggleRole, withoutTag } from '../tags';

describe('cell role tags', () => {
  it('adds a role tag, replacing another role but keeping other tags', () => {
    expect(toggleRole(undefined, 'parameters')).toEqual(['parameters']);
    expect(toggleRole(['setup', 'mine'], 'response')).toEqual([
      'mine',
      'response'
    ]);
  });

  it('removes a role tag that is present', () => {
    expect(toggleRole(['mine', 'skip'], 'skip')).toEqual(['mine']);
  });

  it('reads malformed tag metadata as no tags', () => {
    expect(hasTag('parameters', 'parameters')).toBe(false);
    expect(withoutTag(null, 'skip')).toEqual([]);
    expect(hasTag(['parameters'], 'parameters')).toBe(true);
  });
});
