/**
 * Cell roles as labels on the notebook: pure helpers, no JupyterLab imports (jest tests them).
 *
 * The server's static inspection (`POST promoter/roles`, the library's own rules) is the source
 * of truth. `rolesByPosition` is the same rule (DESIGN.md section 1) for the moments the server
 * cannot answer with roles: while the tags break the contract (no `response` cell yet) and
 * before its first answer arrives. `src/__tests__/roles.cases.json` holds cases the library
 * produced; pytest checks them against the library and jest against this rule.
 */

/** What the label on a code cell says. */
export type CellLabel =
  | 'parameters'
  | 'setup'
  | 'handler'
  | 'response'
  | 'skip'
  | 'not promoted'
  | 'conflict';

/** A cell as the rule reads it. */
export interface ICellFacts {
  cellType: string;
  tags: readonly string[];
}

const ROLE_TAGS = ['parameters', 'setup', 'response', 'skip'];

/**
 * The library's role of each cell (`Role` in promoter/_notebook.py): tags first, then position.
 * Markdown cells are "markdown", other non-code cells "raw", a cell with two role tags "conflict".
 */
export function rolesByPosition(cells: readonly ICellFacts[]): string[] {
  const firstTagged = (tag: string): number =>
    cells.findIndex(c => c.cellType === 'code' && c.tags.includes(tag));
  const params = firstTagged('parameters');
  const response = firstTagged('response');
  return cells.map((cell, index) => {
    if (cell.cellType === 'markdown') {
      return 'markdown';
    }
    if (cell.cellType !== 'code') {
      return 'raw';
    }
    const explicit = ROLE_TAGS.filter(t => cell.tags.includes(t));
    if (explicit.length > 1) {
      return 'conflict';
    }
    if (explicit.length === 1) {
      return explicit[0];
    }
    if (params < 0 || index < params) {
      return 'setup';
    }
    if (response < 0 || index < response) {
      return 'handler';
    }
    return 'skip';
  });
}

/**
 * The label of a code cell: the role, with "skip" split into the explicit tag and the cells
 * after `response`, which are not promoted by position. `null` for markdown and raw cells.
 */
export function labelFor(
  role: string,
  tags: readonly string[]
): CellLabel | null {
  switch (role) {
    case 'parameters':
    case 'setup':
    case 'handler':
    case 'response':
    case 'conflict':
      return role;
    case 'skip':
      return tags.includes('skip') ? 'skip' : 'not promoted';
    default:
      return null;
  }
}

/** The label's tooltip: what the role means in the service, and where it came from. */
export function describeLabel(label: CellLabel, explicit: boolean): string {
  const why = explicit ? 'tagged' : 'from its position';
  switch (label) {
    case 'parameters':
      return 'Parameters: each assignment is a request field (tagged)';
    case 'setup':
      return `Setup: runs once when the service starts (${why})`;
    case 'handler':
      return `Handler: runs for every request (${why})`;
    case 'response':
      return 'Response: its last expression is the response body (tagged)';
    case 'skip':
      return 'Skip: never promoted (tagged)';
    case 'not promoted':
      return 'Not promoted: after the response cell, so the service never runs it';
    case 'conflict':
      return 'Conflicting tags: keep at most one of parameters, setup, response, skip';
  }
}

/** A cell as people count it: 1-based, as JupyterLab's status bar and the dialog number it. */
export function cellNumber(index: number): number {
  return index + 1;
}
