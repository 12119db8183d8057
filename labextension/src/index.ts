/**
 * promoter-jupyterlab: a "Promote" button on notebooks that shows what service the notebook
 * would become (request fields, response schema, cell roles, warnings), then generates it.
 *
 * The toolbar button is declared in schema/plugin.json (`jupyter.lab.toolbars`) and points at
 * the `promoter:promote` command registered here; the cell-role commands fill the cell
 * context menu declared in the same file.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { PathExt, URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import type { Cell } from '@jupyterlab/cells';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  PromoterRequestError,
  callService,
  cancelJob,
  getJob,
  startJob,
  startService,
  stopService
} from './api';
import { CellRoleLabels } from './labels';
import {
  defaultOutDir,
  exampleRequest,
  renderConversion,
  renderError,
  renderInspection,
  renderProgress,
  renderTryResult
} from './render';
import {
  ROLE_TAGS,
  RoleTag,
  UNIQUE_TAGS,
  hasTag,
  toggleRole,
  withoutTag
} from './tags';
import {
  IConversion,
  IErrorReply,
  IInspection,
  IJob,
  ILocation,
  IService
} from './types';

/** The command ids, also referenced by schema/plugin.json. */
export namespace CommandIDs {
  export const promote = 'promoter:promote';
  export const tag = (role: RoleTag): string => `promoter:tag-${role}`;
}

// An arrow rising out of a tray: the notebook leaving for production.
const promoteIcon = new LabIcon({
  name: 'promoter:promote',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M12 2 6.5 7.5l1.4 1.4L11 5.8V15h2V5.8l3.1 3.1 1.4-1.4z"/>' +
    '<path d="M4 13v7a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2v-7h-2v7H6v-7z"/>' +
    '</g></svg>'
});

const ROLE_LABELS: Record<RoleTag, string> = {
  parameters: 'Tag Cell as Parameters (request fields)',
  setup: 'Tag Cell as Setup (runs once at startup)',
  response: 'Tag Cell as Response (last expression is the body)',
  skip: 'Tag Cell as Skip (never promoted)'
};

/** The dialog body: progress while the kernel runs, then the inspection or the error. */
class PromoteBody extends Widget implements Dialog.IBodyWidget<string> {
  constructor() {
    super();
    this.addClass('jp-Promoter-body');
  }

  /** Show a run's progress (queued, cells done / total). */
  showProgress(job: IJob): void {
    this.node.replaceChildren(renderProgress(job));
  }

  showInspection(inspection: IInspection, outDir: string): void {
    this.node.replaceChildren(renderInspection(inspection, outDir));
  }

  showError(error: IErrorReply, goToCell?: (loc: ILocation) => void): void {
    this.node.replaceChildren(renderError(error, goToCell));
  }

  showNode(node: HTMLElement): void {
    this.node.replaceChildren(node);
  }

  getValue(): string {
    const input = this.node.querySelector<HTMLInputElement>(
      'input[name="out_dir"]'
    );
    return input?.value.trim() ?? '';
  }
}

function errorReply(error: unknown): IErrorReply {
  if (error instanceof PromoterRequestError) {
    return error.reply;
  }
  if (error instanceof ServerConnection.NetworkError) {
    return {
      error: 'NetworkError',
      message: `The Jupyter server did not answer: ${error.message}`
    };
  }
  return { message: error instanceof Error ? error.message : String(error) };
}

/** How often the dialog asks the server for a run's progress. */
const POLL_MS = 250;

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** The footer button with `className` (Generate is `jp-mod-accept`). */
function footerButton(
  dialog: Dialog<unknown>,
  className: string
): HTMLButtonElement | null {
  return dialog.node.querySelector<HTMLButtonElement>(
    `.jp-Dialog-footer .${className}`
  );
}

/**
 * Follow a server job until it finishes or `closed()` says the dialog went away (then cancel
 * it: the server kills its worker and kernel). Answers the finished job, or null.
 */
async function follow(
  first: IJob,
  onUpdate: (job: IJob) => void,
  closed: () => boolean
): Promise<IJob | null> {
  let job = first;
  for (;;) {
    onUpdate(job);
    if (job.state === 'done' || job.state === 'failed') {
      return job;
    }
    if (job.state === 'cancelled') {
      return null;
    }
    await sleep(POLL_MS);
    if (closed()) {
      await cancelJob(job.id).catch(() => undefined);
      return null;
    }
    job = await getJob(job.id);
  }
}

/** Select a cell (by id, else by 0-based index) and scroll it into view. */
async function goToCell(
  panel: NotebookPanel,
  loc: ILocation
): Promise<boolean> {
  const notebook = panel.content;
  let index = notebook.widgets.findIndex(
    cell => loc.cell_id && cell.model.id === loc.cell_id
  );
  if (index < 0 && typeof loc.cell_index === 'number') {
    index = loc.cell_index;
  }
  if (index < 0 || index >= notebook.widgets.length) {
    return false;
  }
  notebook.mode = 'command';
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  await notebook.scrollToCell(notebook.widgets[index], 'center');
  notebook.activate();
  return true;
}

/** The promote flow, bound to the application's services. */
class Promoter {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly docManager: IDocumentManager,
    private readonly fileBrowser: IDefaultFileBrowser | null
  ) {}

  /** Save, inspect (progress streamed), show the dialog; on "Generate", write the service. */
  async promote(panel: NotebookPanel): Promise<void> {
    const { context } = panel;
    if (context.model.dirty && !context.model.readOnly) {
      await context.save();
    }
    // Collaborative drives prefix paths ("RTC:nb.ipynb"); the server wants the plain path.
    const path = this.app.serviceManager.contents.localPath(context.path);
    const name = PathExt.basename(path);
    const body = new PromoteBody();
    const dialog = new Dialog<string>({
      title: `Promote ${name} to a service`,
      body,
      // Focus stays on "Generate" so the dialog opens scrolled to the request fields.
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Generate' })]
    });
    dialog.addClass('jp-Promoter-dialog');
    let closed = false;
    const result = dialog.launch().then(value => {
      closed = true;
      return value;
    });
    const generate = footerButton(dialog, 'jp-mod-accept');
    if (generate) {
      generate.disabled = true;
    }
    const inspection = await this.run(
      { action: 'inspect', path },
      body,
      () => closed,
      panel,
      dialog
    );
    if (inspection && !closed) {
      body.showInspection(inspection as IInspection, defaultOutDir(path));
      if (generate) {
        generate.disabled = false;
        generate.focus();
      }
    }
    const answer = await result;
    if (inspection && answer.button.accept && answer.value) {
      await this.generate(
        path,
        answer.value,
        false,
        inspection as IInspection,
        panel
      );
    }
  }

  /**
   * Run a server job, showing its progress in `body`; answer its result, or null (failed: the
   * error is shown, with "Go to cell" when it names one; or cancelled).
   */
  private async run(
    request: Parameters<typeof startJob>[0],
    body: PromoteBody,
    closed: () => boolean,
    panel: NotebookPanel | null,
    dialog: Dialog<unknown>
  ): Promise<unknown> {
    let job: IJob | null;
    try {
      job = await follow(
        await startJob(request),
        update => body.showProgress(update),
        closed
      );
    } catch (error) {
      body.showError(errorReply(error));
      return null;
    }
    if (!job || closed()) {
      return null;
    }
    if (job.state === 'failed') {
      const reply = job.result as IErrorReply;
      if (reply.error === 'EditedFileError') {
        throw new PromoterRequestError(job.status ?? 422, reply);
      }
      body.showError(
        reply,
        panel
          ? loc => {
              dialog.reject();
              void goToCell(panel, loc);
            }
          : undefined
      );
      return null;
    }
    return job.result;
  }

  /** Write the service (progress shown); then offer "Try it". */
  async generate(
    path: string,
    outDir: string,
    force: boolean,
    inspection: IInspection,
    panel: NotebookPanel | null = null
  ): Promise<void> {
    const body = new PromoteBody();
    const dialog = new Dialog<string>({
      title: `Generating ${outDir}/`,
      body,
      buttons: [Dialog.cancelButton({ label: 'Close' })]
    });
    dialog.addClass('jp-Promoter-dialog');
    let closed = false;
    const result = dialog.launch().then(value => {
      closed = true;
      return value;
    });
    let conversion: IConversion | null;
    try {
      conversion = (await this.run(
        { action: 'convert', path, out_dir: outDir, force },
        body,
        () => closed,
        panel,
        dialog
      )) as IConversion | null;
    } catch (error) {
      dialog.reject();
      if (
        error instanceof PromoterRequestError &&
        error.reply.error === 'EditedFileError'
      ) {
        const answer = await showDialog({
          title: 'Overwrite edited files?',
          body: new Widget({ node: renderError(error.reply) }),
          buttons: [
            Dialog.cancelButton(),
            Dialog.warnButton({ label: 'Overwrite' })
          ]
        });
        if (answer.button.accept) {
          await this.generate(path, outDir, true, inspection, panel);
        }
      }
      return;
    }
    if (!conversion || closed) {
      await result;
      return;
    }
    // The server wrote the files behind the file browser's back: show the new folder now.
    void this.fileBrowser?.model.refresh();
    if (conversion.readme) {
      this.openReadme(conversion.readme);
    }
    const title = dialog.node.querySelector('.jp-Dialog-header');
    if (title) {
      title.textContent = `Service generated in ${conversion.out_dir_path}/`;
    }
    body.showNode(this.generated(conversion, inspection));
    await result;
  }

  /** What "Generate" wrote, and the "Try it" button (a second click stops the service). */
  private generated(
    conversion: IConversion,
    inspection: IInspection
  ): HTMLElement {
    const output = document.createElement('div');
    output.className = 'jp-Promoter-tryOutput';
    const button = document.createElement('button');
    button.className =
      'jp-Promoter-tryButton jp-Button jp-mod-styled jp-mod-accept';
    button.textContent = 'Try it';
    let service: IService | null = null;
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        if (service) {
          await stopService(service.name);
          service = null;
          output.replaceChildren('Service stopped.');
          button.textContent = 'Try it';
        } else {
          output.replaceChildren(
            'Starting the service and sending the example request…'
          );
          service = await startService(conversion.out_dir_path);
          button.textContent = 'Stop service';
          output.replaceChildren(await this.tryService(service, inspection));
        }
      } catch (error) {
        output.replaceChildren(renderError(errorReply(error)));
      } finally {
        button.disabled = false;
      }
    });
    const node = renderConversion(conversion);
    node.prepend(button);
    node.append(output);
    return node;
  }

  private async tryService(
    service: IService,
    inspection: IInspection
  ): Promise<HTMLElement> {
    const request = exampleRequest(inspection.parameters ?? []);
    const answer = await callService(service, inspection.route, request);
    const settings = this.app.serviceManager.serverSettings;
    return renderTryResult(
      inspection.route,
      request,
      answer,
      inspection.sample_response,
      URLExt.join(settings.baseUrl, service.docs)
    );
  }

  private openReadme(readme: string): void {
    // The rendered Markdown reads best; fall back to the default (editor) if the viewer is absent.
    const widget =
      this.docManager.openOrReveal(readme, 'Markdown Preview') ??
      this.docManager.openOrReveal(readme);
    if (!widget) {
      console.warn(`promoter: could not open ${readme}`);
    }
  }
}

/** Where a role command came from: the cell context menu passes `{ origin: 'context-menu' }`. */
const CONTEXT_MENU = 'context-menu';

function addRoleCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  palette: ICommandPalette | null
): void {
  const { commands } = app;
  /**
   * The cell a command acts on: from the context menu, the cell that was right-clicked (which
   * need not be the selected one); from the palette or a shortcut, the active cell.
   */
  const target = (args: ReadonlyPartialJSONObject): Cell | null => {
    const panel = tracker.currentWidget;
    if (args.origin === CONTEXT_MENU && panel) {
      const node = app.contextMenuHitTest(n => n.classList.contains('jp-Cell'));
      const clicked = panel.content.widgets.find(w => w.node === node);
      if (clicked) {
        return clicked;
      }
    }
    return tracker.activeCell;
  };
  for (const role of ROLE_TAGS) {
    commands.addCommand(CommandIDs.tag(role), {
      label: ROLE_LABELS[role],
      caption: `Toggle the "${role}" tag on the cell`,
      isEnabled: args => target(args)?.model.type === 'code',
      isToggled: args => hasTag(target(args)?.model.getMetadata('tags'), role),
      execute: args => {
        const panel = tracker.currentWidget;
        const cell = target(args);
        if (!panel || !cell) {
          return;
        }
        const tags = cell.model.getMetadata('tags');
        if (!hasTag(tags, role) && UNIQUE_TAGS.has(role)) {
          // The contract wants exactly one such cell: move the tag rather than duplicate it.
          for (const other of panel.content.widgets) {
            const otherTags = other.model.getMetadata('tags');
            if (other !== cell && hasTag(otherTags, role)) {
              setTags(other.model, withoutTag(otherTags, role));
            }
          }
        }
        setTags(cell.model, toggleRole(tags, role));
        commands.notifyCommandChanged(CommandIDs.tag(role));
      }
    });
    palette?.addItem({ command: CommandIDs.tag(role), category: 'Promoter' });
  }
  tracker.activeCellChanged.connect(() => commands.notifyCommandChanged());
}

function setTags(
  model: {
    setMetadata(key: string, value: unknown): void;
    deleteMetadata(key: string): unknown;
  },
  tags: string[]
): void {
  if (tags.length > 0) {
    model.setMetadata('tags', tags);
  } else {
    model.deleteMetadata('tags');
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'promoter-jupyterlab:plugin',
  description:
    'A "Promote" button that turns a tagged notebook into a FastAPI service.',
  autoStart: true,
  requires: [INotebookTracker, IDocumentManager],
  optional: [ICommandPalette, IDefaultFileBrowser, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    docManager: IDocumentManager,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    const promoter = new Promoter(app, docManager, fileBrowser);
    app.commands.addCommand(CommandIDs.promote, {
      label: args =>
        args.toolbar ? 'Promote' : 'Promote Notebook to Service…',
      caption: 'Promote to service',
      icon: promoteIcon,
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const panel = tracker.currentWidget;
        if (panel) {
          await promoter.promote(panel);
        }
      }
    });
    tracker.currentChanged.connect(() =>
      app.commands.notifyCommandChanged(CommandIDs.promote)
    );
    palette?.addItem({ command: CommandIDs.promote, category: 'Promoter' });
    addRoleCommands(app, tracker, palette);
    showRoleLabels(app, tracker, settingRegistry);
  }
};

/**
 * A role label on every code cell, kept up to date as tags and cell order change; the
 * `showRoleLabels` setting takes them off (and puts them back) on every open notebook.
 */
function showRoleLabels(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  registry: ISettingRegistry | null
): void {
  const labels = new Map<NotebookPanel, CellRoleLabels>();
  let show = true;
  const follow = (panel: NotebookPanel): void => {
    panel.node.dataset.promoterLabels = show ? 'on' : 'off';
    if (show && !labels.has(panel) && !panel.isDisposed) {
      const pathOf = () =>
        app.serviceManager.contents.localPath(panel.context.path);
      labels.set(panel, new CellRoleLabels(panel, pathOf));
    } else if (!show) {
      labels.get(panel)?.dispose();
      labels.delete(panel);
    }
  };
  const ready = registry
    ? registry.load(plugin.id).then(settings => {
        const read = (): void => {
          show = settings.get('showRoleLabels').composite !== false;
          tracker.forEach(follow);
        };
        settings.changed.connect(read);
        read();
      })
    : Promise.resolve();
  tracker.widgetAdded.connect((_, panel) => {
    void ready.catch(() => undefined).then(() => follow(panel));
    panel.disposed.connect(() => {
      labels.get(panel)?.dispose();
      labels.delete(panel);
    });
  });
}

export default plugin;
