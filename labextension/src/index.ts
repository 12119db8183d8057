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
import {
  Dialog,
  ICommandPalette,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { PromoterRequestError, convertNotebook, inspectNotebook } from './api';
import {
  defaultOutDir,
  renderConversion,
  renderError,
  renderInspection
} from './render';
import {
  ROLE_TAGS,
  RoleTag,
  UNIQUE_TAGS,
  hasTag,
  toggleRole,
  withoutTag
} from './tags';
import { IConversion, IErrorReply, IInspection } from './types';

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

/** The dialog body: the rendered inspection, whose value is the output folder. */
class PromoteBody extends Widget implements Dialog.IBodyWidget<string> {
  constructor(inspection: IInspection, outDir: string) {
    super({ node: renderInspection(inspection, outDir) });
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

async function showError(title: string, error: unknown): Promise<void> {
  await showDialog({
    title,
    body: new Widget({ node: renderError(errorReply(error)) }),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

/** The promote flow, bound to the application's services. */
class Promoter {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly docManager: IDocumentManager,
    private readonly fileBrowser: IDefaultFileBrowser | null
  ) {}

  /** Save, inspect, show the dialog; on "Generate", write the service. */
  async promote(panel: NotebookPanel): Promise<void> {
    const { context } = panel;
    if (context.model.dirty && !context.model.readOnly) {
      await context.save();
    }
    // Collaborative drives prefix paths ("RTC:nb.ipynb"); the server wants the plain path.
    const path = this.app.serviceManager.contents.localPath(context.path);
    const name = PathExt.basename(path);
    const busy = Notification.emit(
      `Running ${name} with its default parameters…`,
      'in-progress',
      { autoClose: false }
    );
    let inspection: IInspection;
    try {
      inspection = await inspectNotebook(path);
    } catch (error) {
      Notification.dismiss(busy);
      await showError(`Cannot promote ${name}`, error);
      return;
    }
    Notification.dismiss(busy);
    const dialog = new Dialog<string>({
      title: `Promote ${name} to a service`,
      body: new PromoteBody(inspection, defaultOutDir(path)),
      // Focus stays on "Generate" so the dialog opens scrolled to the request fields.
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Generate' })]
    });
    dialog.addClass('jp-Promoter-dialog');
    const result = await dialog.launch();
    if (result.button.accept && result.value) {
      await this.generate(path, result.value, false);
    }
  }

  /** Write the service; offer to overwrite files the user edited since the last run. */
  async generate(path: string, outDir: string, force: boolean): Promise<void> {
    const busy = Notification.emit(`Generating ${outDir}/…`, 'in-progress', {
      autoClose: false
    });
    let conversion: IConversion;
    try {
      conversion = await convertNotebook(path, outDir, force);
    } catch (error) {
      Notification.dismiss(busy);
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
          await this.generate(path, outDir, true);
        }
        return;
      }
      await showError('Cannot generate the service', error);
      return;
    }
    Notification.update({
      id: busy,
      message: `Service written to ${conversion.out_dir_path}/ (${conversion.files.length} files)`,
      type: 'success',
      autoClose: 10000,
      actions: [
        {
          label: 'Show files',
          callback: () => void this.showConversion(conversion)
        }
      ]
    });
    // The server wrote the files behind the file browser's back: show the new folder now.
    void this.fileBrowser?.model.refresh();
    if (conversion.readme) {
      this.openReadme(conversion.readme);
    }
  }

  private async showConversion(conversion: IConversion): Promise<void> {
    await showDialog({
      title: 'Service generated',
      body: new Widget({ node: renderConversion(conversion) }),
      buttons: [Dialog.okButton({ label: 'Close' })]
    });
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

function addRoleCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  palette: ICommandPalette | null
): void {
  const { commands } = app;
  const isCodeCell = (): boolean => tracker.activeCell?.model.type === 'code';
  for (const role of ROLE_TAGS) {
    commands.addCommand(CommandIDs.tag(role), {
      label: ROLE_LABELS[role],
      caption: `Toggle the "${role}" tag on the active cell`,
      isEnabled: isCodeCell,
      isToggled: () =>
        hasTag(tracker.activeCell?.model.getMetadata('tags'), role),
      execute: () => {
        const panel = tracker.currentWidget;
        const cell = tracker.activeCell;
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
  optional: [ICommandPalette, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    docManager: IDocumentManager,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null
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
  }
};

export default plugin;
