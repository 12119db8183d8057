/**
 * A role label and a coloured edge on every code cell of an open notebook.
 *
 * On every change of the notebook (tags, cell order, sources) the labels follow the position
 * rule at once, then, after a pause in the edits, the server's static inspection of the
 * notebook as the browser holds it (`POST promoter/roles`, unsaved edits included), which is
 * the library's own answer and wins.
 */
import { Notebook, NotebookPanel } from '@jupyterlab/notebook';

import { fetchRoles } from './api';
import { CellLabel, describeLabel, labelFor, rolesByPosition } from './roles';
import { IErrorReply, IRoles } from './types';

type Cell = Notebook['widgets'][number];

/** How long edits must pause before the server is asked. */
export const DEBOUNCE_MS = 400;

const LABEL_CLASS = 'jp-Promoter-cellRole';
const CELL_CLASS = 'jp-Promoter-cell';

function tagsOf(cell: Cell): string[] {
  const tags = cell.model.getMetadata('tags');
  return Array.isArray(tags) ? tags.filter(t => typeof t === 'string') : [];
}

function slug(label: CellLabel): string {
  return label.replace(/\s+/g, '-');
}

/** The labels of one notebook panel. */
export class CellRoleLabels {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private asked = 0;
  private disposed = false;

  constructor(
    private readonly panel: NotebookPanel,
    private readonly pathOf: () => string
  ) {
    void panel.context.ready.then(() => {
      if (this.disposed || !panel.model) {
        return;
      }
      panel.model.contentChanged.connect(this.changed, this);
      panel.content.model?.cells.changed.connect(this.changed, this);
      this.changed();
    });
  }

  /** Stop following the notebook and take the labels off its cells. */
  dispose(): void {
    this.disposed = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    this.panel.model?.contentChanged.disconnect(this.changed, this);
    this.panel.content.model?.cells.changed.disconnect(this.changed, this);
    for (const cell of this.panel.content.widgets) {
      cell.node.querySelector(`:scope > .${LABEL_CLASS}`)?.remove();
      for (const cls of Array.from(cell.node.classList)) {
        if (cls.startsWith(CELL_CLASS)) {
          cell.node.classList.remove(cls);
        }
      }
    }
    delete this.panel.node.dataset.promoterRoles;
  }

  /** The notebook changed: relabel by position now, ask the server after a pause. */
  private changed(): void {
    if (this.disposed) {
      return;
    }
    const cells = this.panel.content.widgets;
    const roles = rolesByPosition(
      cells.map(c => ({ cellType: c.model.type, tags: tagsOf(c) }))
    );
    cells.forEach((cell, i) => this.label(cell, roles[i], null));
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => void this.ask(), DEBOUNCE_MS);
  }

  private async ask(): Promise<void> {
    this.timer = null;
    const model = this.panel.model;
    if (this.disposed || !model) {
      return;
    }
    const asked = ++this.asked;
    let answer: IRoles;
    try {
      answer = await fetchRoles(this.pathOf(), model.toJSON());
    } catch (error) {
      console.warn('promoter: cannot ask the server for cell roles', error);
      return;
    }
    if (asked !== this.asked || this.disposed) {
      return; // a newer question is on its way
    }
    this.apply(answer);
  }

  /** Show the server's answer; cells are matched by id (the notebook may have moved on). */
  private apply(answer: IRoles): void {
    const cells = this.panel.content.widgets;
    const byId = new Map(answer.cells?.map(c => [c.id, c.role]) ?? []);
    const local = rolesByPosition(
      cells.map(c => ({ cellType: c.model.type, tags: tagsOf(c) }))
    );
    cells.forEach((cell, i) => {
      const role = byId.get(cell.model.id) ?? local[i];
      const error = this.errorAt(answer.error, cell, i);
      this.label(cell, role, error);
    });
    this.panel.node.dataset.promoterRoles = answer.cells
      ? 'server'
      : 'position';
  }

  private errorAt(
    error: IErrorReply | null,
    cell: Cell,
    index: number
  ): IErrorReply | null {
    if (!error || error.cell_index === null || error.cell_index === undefined) {
      return null;
    }
    const here = error.cell_id
      ? error.cell_id === cell.model.id
      : error.cell_index === index;
    return here ? error : null;
  }

  private label(cell: Cell, role: string, error: IErrorReply | null): void {
    const tags = tagsOf(cell);
    const label = labelFor(role, tags);
    const node = cell.node;
    let badge = node.querySelector<HTMLElement>(`:scope > .${LABEL_CLASS}`);
    for (const cls of Array.from(node.classList)) {
      if (cls.startsWith(`${CELL_CLASS}-`)) {
        node.classList.remove(cls);
      }
    }
    if (label === null) {
      node.classList.remove(CELL_CLASS);
      badge?.remove();
      return;
    }
    if (!badge) {
      badge = document.createElement('div');
      badge.className = LABEL_CLASS;
      // Appended last: Lumino inserts child widgets by DOM index, so nothing may precede them.
      node.appendChild(badge);
    }
    node.classList.add(CELL_CLASS, `${CELL_CLASS}-${slug(label)}`);
    const explicit = tags.includes(role);
    badge.textContent = error ? `${label} ⚠` : label;
    badge.title = error
      ? `${describeLabel(label, explicit)}\n${error.error ?? 'Error'}: ${error.message}`
      : describeLabel(label, explicit);
    badge.dataset.role = label;
    if (error) {
      node.classList.add(`${CELL_CLASS}-error`);
    }
  }
}
