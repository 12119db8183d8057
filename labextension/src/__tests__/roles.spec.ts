import cases from './roles.cases.json';
import { cellNumber, describeLabel, labelFor, rolesByPosition } from '../roles';

describe('rolesByPosition', () => {
  // The same cases tests/test_labextension_unit.py checks against the library.
  for (const c of cases.cases) {
    it(`agrees with the library: ${c.name}`, () => {
      const cells = c.cells.map(([cellType, tags]) => ({
        cellType: cellType as string,
        tags: tags as string[]
      }));
      expect(rolesByPosition(cells)).toEqual(c.roles);
    });
  }

  it('treats everything after parameters as the handler while no cell is the response', () => {
    expect(
      rolesByPosition([
        { cellType: 'code', tags: [] },
        { cellType: 'code', tags: ['parameters'] },
        { cellType: 'code', tags: [] }
      ])
    ).toEqual(['setup', 'parameters', 'handler']);
  });

  it('flags a cell with two role tags', () => {
    expect(
      rolesByPosition([{ cellType: 'code', tags: ['setup', 'skip'] }])
    ).toEqual(['conflict']);
  });
});

describe('labelFor', () => {
  it('tells a skipped cell from one after the response', () => {
    expect(labelFor('skip', ['skip'])).toBe('skip');
    expect(labelFor('skip', [])).toBe('not promoted');
  });

  it('labels code roles and nothing else', () => {
    expect(labelFor('handler', [])).toBe('handler');
    expect(labelFor('markdown', [])).toBeNull();
    expect(labelFor('raw', [])).toBeNull();
  });
});

describe('describeLabel', () => {
  it('says whether the role comes from a tag or from the position', () => {
    expect(describeLabel('setup', true)).toContain('tagged');
    expect(describeLabel('setup', false)).toContain('from its position');
    expect(describeLabel('not promoted', false)).toContain(
      'after the response'
    );
  });
});

describe('cellNumber', () => {
  it('counts from 1, as the status bar does', () => {
    expect(cellNumber(0)).toBe(1);
    expect(cellNumber(14)).toBe(15);
  });
});
