import {
  defaultOutDir,
  exampleRequest,
  formatLocation,
  progressText,
  renderProgress,
  renderTryResult,
  sameJSON,
  renderConversion,
  renderError,
  renderInspection,
  renderSchemaTree,
  schemaType
} from '../render';
import { IInspection, IJob, IJSONSchema } from '../types';

// The shape `promoter.inspect(...).to_dict()` answers for a small classifier notebook.
const RESPONSE_SCHEMA: IJSONSchema = {
  title: 'IrisResponse',
  type: 'object',
  properties: {
    species: { title: 'Species', type: 'string' },
    probabilities: {
      title: 'Probabilities',
      type: 'object',
      additionalProperties: { type: 'number' }
    },
    top: { type: 'array', items: { $ref: '#/$defs/Candidate' } },
    note: { anyOf: [{ type: 'string' }, { type: 'null' }], default: null }
  },
  required: ['species', 'probabilities', 'top'],
  $defs: {
    Candidate: {
      title: 'Candidate',
      type: 'object',
      properties: {
        label: { type: 'string', description: 'Species name' },
        score: { type: 'number' }
      },
      required: ['label', 'score']
    }
  }
};

const INSPECTION: IInspection = {
  notebook: 'models/iris_classifier.ipynb',
  route: '/iris_classifier',
  summary: 'Classify an iris flower',
  cells: [
    {
      index: 0,
      id: 'a1',
      role: 'markdown',
      source_preview: '# Classify an iris flower'
    },
    { index: 1, id: 'b2', role: 'setup', source_preview: 'import numpy as np' },
    {
      index: 2,
      id: 'c3',
      role: 'parameters',
      source_preview: 'sepal_length: float = 5.1'
    },
    { index: 3, id: 'd4', role: 'response', source_preview: 'result' }
  ],
  parameters: [
    {
      name: 'sepal_length',
      type: 'float',
      default: 5.1,
      description: 'Sepal length in cm',
      required: false
    },
    {
      name: 'species_hint',
      type: 'str | None',
      default: null,
      description: null,
      required: false
    },
    {
      name: 'top_k',
      type: 'int',
      default: 3,
      description: undefined,
      required: true
    }
  ],
  request_schema: { type: 'object' },
  response_schema: RESPONSE_SCHEMA,
  sample_response: {
    species: 'setosa',
    probabilities: { setosa: 0.97 },
    top: []
  },
  warnings: [
    {
      message: 'parameter "x" has no type annotation',
      notebook: 'models/iris_classifier.ipynb',
      cell_index: 2,
      cell_id: 'c3',
      line: 4
    }
  ],
  dropped: [
    {
      what: '%matplotlib inline',
      why: 'IPython magic %matplotlib',
      notebook: null,
      cell_index: 1,
      line: 1
    }
  ],
  description: 'Predicts the species from four measurements.',
  response_type: 'IrisResponse',
  kernel_seconds: 2.345
};

function texts(root: Element, selector: string): string[] {
  return Array.from(root.querySelectorAll(selector)).map(
    n => n.textContent ?? ''
  );
}

describe('renderInspection', () => {
  const node = renderInspection(INSPECTION, 'models/iris_classifier_service');

  it('shows the endpoint and its summary', () => {
    expect(node.querySelector('.jp-Promoter-endpoint')?.textContent).toBe(
      'POST /iris_classifier — Classify an iris flower'
    );
  });

  it('lists every request field with type, default and description', () => {
    const rows = Array.from(
      node.querySelectorAll('.jp-Promoter-parameters tbody tr')
    );
    expect(rows.map(r => texts(r, 'td'))).toEqual([
      ['sepal_length', 'float', '5.1', 'Sepal length in cm'],
      ['species_hint', 'str | None', 'null', ''],
      ['top_k', 'int', 'required', '']
    ]);
    expect(texts(node, '.jp-Promoter-parameters th')).toEqual([
      'Name',
      'Type',
      'Default',
      'Description'
    ]);
  });

  it('shows the description under the endpoint', () => {
    expect(
      node.querySelector('.jp-Promoter-scroll > .jp-Promoter-description')
        ?.textContent
    ).toBe('Predicts the species from four measurements.');
  });

  it('says where the response schema comes from', () => {
    expect(node.querySelector('.jp-Promoter-origin')?.textContent).toBe(
      'IrisResponse, inferred from the notebook run with its defaults in 2.3 s:'
    );
  });

  it('shows the response schema as a field tree, resolving $refs', () => {
    const tree = node.querySelector('.jp-Promoter-response .jp-Promoter-tree');
    expect(tree).not.toBeNull();
    const top = Array.from(tree!.children).map(
      li => li.firstChild?.textContent
    );
    expect(top).toEqual(['species', 'probabilities', 'top', 'note']);
    const text = tree!.textContent ?? '';
    expect(text).toContain('probabilities: dict[str, number]');
    expect(text).toContain('top: list[Candidate]');
    expect(text).toContain('[ ].label: string');
    expect(text).toContain('Species name');
    expect(text).toContain('note: string | null optional');
  });

  it('keeps the sample response and raw schema as pretty JSON', () => {
    const pre = node.querySelector('.jp-Promoter-sample pre');
    expect(JSON.parse(pre?.textContent ?? '')).toEqual(
      INSPECTION.sample_response
    );
    const raw = node.querySelector('.jp-Promoter-rawSchema pre');
    expect(JSON.parse(raw?.textContent ?? '')).toEqual(RESPONSE_SCHEMA);
  });

  it('lists each code cell with its role and first line, and counts the others', () => {
    const rows = Array.from(
      node.querySelectorAll('.jp-Promoter-cells tbody tr')
    );
    expect(rows.map(r => texts(r, 'td'))).toEqual([
      // 1-based, as JupyterLab's status bar counts cells (index 1 is "cell 2").
      ['2', 'setup', 'import numpy as np'],
      ['3', 'parameters', 'sepal_length: float = 5.1'],
      ['4', 'response', 'result']
    ]);
    expect(node.querySelector('.jp-Promoter-role-parameters')).not.toBeNull();
    expect(
      node.querySelector('.jp-Promoter-cellsSection')?.textContent
    ).toContain('1 markdown/raw cell not listed');
  });

  it('shows warnings and dropped lines with their location', () => {
    expect(texts(node, '.jp-Promoter-warnings li')).toEqual([
      'cell 3 (id c3), line 4: parameter "x" has no type annotation'
    ]);
    expect(texts(node, '.jp-Promoter-dropped li')).toEqual([
      'cell 2, line 1: %matplotlib inline — IPython magic %matplotlib'
    ]);
  });

  it('has an editable output folder with the default value', () => {
    const input = node.querySelector<HTMLInputElement>('input[name="out_dir"]');
    expect(input?.value).toBe('models/iris_classifier_service');
  });

  it('omits empty warning sections and explains a missing response schema', () => {
    const bare = renderInspection(
      {
        ...INSPECTION,
        warnings: [],
        dropped: [],
        response_schema: null,
        parameters: []
      },
      'x_service'
    );
    expect(bare.querySelector('.jp-Promoter-warnings')).toBeNull();
    expect(bare.querySelector('.jp-Promoter-dropped')).toBeNull();
    expect(bare.querySelector('.jp-Promoter-request')?.textContent).toContain(
      'No request fields'
    );
    expect(bare.querySelector('.jp-Promoter-response')?.textContent).toContain(
      'No response schema'
    );
  });
});

describe('schemaType', () => {
  it('names scalars, containers, unions and tuples', () => {
    expect(schemaType({ type: 'integer' })).toBe('integer');
    expect(schemaType({ type: 'array', items: { type: 'number' } })).toBe(
      'list[number]'
    );
    expect(
      schemaType({
        type: 'array',
        prefixItems: [{ type: 'integer' }, { type: 'string' }]
      })
    ).toBe('tuple[integer, string]');
    expect(schemaType({ anyOf: [{ type: 'integer' }, { type: 'null' }] })).toBe(
      'integer | null'
    );
    expect(schemaType({ enum: ['a', 'b'] })).toBe('"a" | "b"');
    expect(schemaType({ type: 'string', format: 'date-time' })).toBe(
      'string (date-time)'
    );
    expect(schemaType({})).toBe('any');
  });

  it('renders a scalar response as a single line', () => {
    expect(renderSchemaTree({ type: 'number' }).textContent).toBe('number');
  });

  it('renders a list of records as its item fields', () => {
    const tree = renderSchemaTree({
      type: 'array',
      items: {
        type: 'object',
        properties: { a: { type: 'integer' } },
        required: ['a']
      }
    });
    expect(tree.textContent).toBe('[ ].a: integer');
  });

  it('does not loop on recursive schemas', () => {
    const schema: IJSONSchema = {
      $ref: '#/$defs/Node',
      $defs: {
        Node: {
          type: 'object',
          properties: { child: { $ref: '#/$defs/Node' } }
        }
      }
    };
    expect(renderSchemaTree(schema).querySelectorAll('li').length).toBeLessThan(
      20
    );
  });
});

describe('renderError', () => {
  it('shows the error kind, message, location and hint', () => {
    const node = renderError({
      error: 'ParameterError',
      message: 'the default of "x" is not a literal',
      hint: 'annotate it, e.g. x: list[int] = ...',
      notebook: 'nb.ipynb',
      cell_index: 2,
      cell_id: 'c3',
      line: 4
    });
    expect(texts(node, 'p')).toEqual([
      'ParameterError',
      'the default of "x" is not a literal',
      'nb.ipynb, cell 3 (id c3), line 4',
      'Hint: annotate it, e.g. x: list[int] = ...'
    ]);
  });

  it('copes with a bare server message', () => {
    expect(renderError({ message: 'Forbidden' }).textContent).toBe('Forbidden');
  });

  it('lists the edited files of an EditedFileError', () => {
    const node = renderError({
      error: 'EditedFileError',
      message: 'edited',
      paths: ['app/main.py']
    });
    expect(texts(node, 'li')).toEqual(['app/main.py']);
  });
});

describe('renderConversion', () => {
  it('says where the service was written and lists its files', () => {
    const node = renderConversion({
      out_dir: '/root/nb_service',
      out_dir_path: 'nb_service',
      readme: 'nb_service/README.md',
      files: ['README.md', 'app/main.py'],
      routes: ['/nb'],
      warnings: [],
      dropped: []
    });
    expect(node.textContent).toContain('Service written to nb_service/');
    expect(node.textContent).toContain('POST /nb');
    expect(texts(node, '.jp-Promoter-files li')).toEqual([
      'README.md',
      'app/main.py'
    ]);
  });
});

describe('helpers', () => {
  it('formats partial locations', () => {
    expect(formatLocation({})).toBe('');
    expect(formatLocation({ notebook: 'a.ipynb', line: 3 })).toBe(
      'a.ipynb, line 3'
    );
    expect(formatLocation({ cell_index: 0 })).toBe('cell 1');
  });

  it('puts the default output folder next to the notebook', () => {
    expect(defaultOutDir('iris_classifier.ipynb')).toBe(
      'iris_classifier_service'
    );
    expect(defaultOutDir('a/b/Churn Score.ipynb')).toBe(
      'a/b/Churn Score_service'
    );
  });
});

describe('renderError with "Go to cell"', () => {
  const error = {
    error: 'ExecutionError',
    message: 'RuntimeError: boom',
    cell_index: 14,
    cell_id: '6dd672e4',
    line: 1
  };

  it('offers the cell by its 1-based number and passes the location back', () => {
    const visited: unknown[] = [];
    const node = renderError(error, loc => visited.push(loc));
    const button = node.querySelector<HTMLButtonElement>(
      '.jp-Promoter-goToCell'
    );
    expect(button?.textContent).toBe('Go to cell 15');
    expect(node.querySelector('.jp-Promoter-location')?.textContent).toBe(
      'cell 15 (id 6dd672e4), line 1'
    );
    button?.click();
    expect(visited).toEqual([error]);
  });

  it('has no button without a cell or without a callback', () => {
    expect(
      renderError({ message: 'no cell' }, () => undefined).querySelector(
        'button'
      )
    ).toBeNull();
    expect(renderError(error).querySelector('button')).toBeNull();
  });
});

describe('progress', () => {
  const job = (over: Partial<IJob>): IJob => ({
    id: 'j',
    action: 'inspect',
    notebook: 'nb.ipynb',
    state: 'running',
    done: 0,
    total: 0,
    position: null,
    status: null,
    result: null,
    ...over
  });

  it('says how far the kernel got', () => {
    expect(progressText(job({ done: 3, total: 9 }))).toBe(
      'Running the notebook: 3 of 9 cells done'
    );
    expect(progressText(job({}))).toBe('Starting the kernel…');
    expect(progressText(job({ done: 9, total: 9 }))).toContain(
      'All 9 cells done'
    );
  });

  it('says a run is queued, and behind how many', () => {
    expect(progressText(job({ state: 'queued', position: 2 }))).toContain(
      'Queued: 2 runs ahead'
    );
    expect(progressText(job({ state: 'queued', position: 0 }))).toContain(
      'waiting for a free kernel slot'
    );
  });

  it('draws a bar of cells done, indeterminate while queued', () => {
    const running = renderProgress(job({ done: 3, total: 9 }));
    const bar = running.querySelector('progress') as HTMLProgressElement;
    expect([bar.value, bar.max]).toEqual([3, 9]);
    expect(running.dataset.done).toBe('3');
    const queued = renderProgress(job({ state: 'queued', position: 1 }));
    expect(queued.querySelector('progress')?.hasAttribute('value')).toBe(false);
  });
});

describe('Try it', () => {
  it('sends every field with its default', () => {
    expect(
      exampleRequest([
        { name: 'a', type: 'float', default: 5.1, required: false },
        { name: 'b', type: 'str', default: 'x', required: false }
      ])
    ).toEqual({ a: 5.1, b: 'x' });
  });

  it('compares JSON answers by value', () => {
    expect(sameJSON({ a: [1, { b: null }] }, { a: [1, { b: null }] })).toBe(
      true
    );
    expect(sameJSON({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(true);
    expect(sameJSON({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(sameJSON([1, 2], { 0: 1, 1: 2 })).toBe(false);
    expect(sameJSON(0.5, 0.5)).toBe(true);
    expect(sameJSON('1', 1)).toBe(false);
  });

  it("shows the service's answer beside the notebook's, and the docs link", () => {
    const node = renderTryResult(
      '/iris',
      { a: 1 },
      { species: 'setosa' },
      { species: 'setosa' },
      'http://h/promoter/try/iris/docs'
    );
    expect(node.querySelector('.jp-Promoter-verdict-same')).not.toBeNull();
    expect(
      JSON.parse(
        node.querySelector('.jp-Promoter-serviceAnswer pre')?.textContent ?? ''
      )
    ).toEqual({ species: 'setosa' });
    const link = node.querySelector('a') as HTMLAnchorElement;
    expect(link.href).toBe('http://h/promoter/try/iris/docs');
    const different = renderTryResult('/iris', {}, 1, 2, 'd');
    expect(
      different.querySelector('.jp-Promoter-verdict-different')
    ).not.toBeNull();
  });
});
