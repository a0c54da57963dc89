// Stack templates: what a pod spec's `template` stands for. A template picks an image, default services, a default
// port and environment; a spec's own `image`, `services`, `defaultPort` win over the template's, and its
// `environment` is laid over the template's variable by variable. Pure data and one pure function.
// The images are built by docker/build-image.sh --with-templates (custom is the orchestrator's default image).

export interface TemplateService {
  name: string;
  port: number;
}

export interface Template {
  description: string;
  /** Absent: the orchestrator's default image (DEFAULT_IMAGE, podgate/pod:dev). */
  image?: string;
  /** Empty: the image's own default set (its POD_SERVICES). */
  services: readonly TemplateService[];
  defaultPort: number;
  environment: Readonly<Record<string, string>>;
}

const TERMINAL: TemplateService = { name: 'terminal', port: 7681 };
/** Claude Code in a web terminal (docker/templates/claude-code.service); it needs the user's ANTHROPIC_API_KEY. */
const CLAUDE_CODE: TemplateService = { name: 'claude-code', port: 2528 };
const PYTHON_ENV = { PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONUNBUFFERED: '1' };

/** In the order GET /v1/templates lists them. */
export const TEMPLATES = {
  custom: {
    description: 'The minimal pod image: bash, git, curl and the demo app on 3000 (the default).',
    services: [],
    defaultPort: 3000,
    environment: {},
  },
  node: {
    description: 'Node 24 with npm and pnpm; your dev server (npm run dev) on 3000; Claude Code on 2528 (set ANTHROPIC_API_KEY).',
    image: 'podgate/pod:node',
    services: [TERMINAL, CLAUDE_CODE],
    defaultPort: 3000,
    environment: {},
  },
  python: {
    description: "Debian's Python 3 with pip and venv; your server on 8000.",
    image: 'podgate/pod:python',
    services: [TERMINAL],
    defaultPort: 8000,
    environment: PYTHON_ENV,
  },
  nextjs: {
    description: 'Node 24 with a Next.js starter in ~/app whose dev server (npm run dev) serves 3000; Claude Code on 2528.',
    image: 'podgate/pod:nextjs',
    services: [{ name: 'nextjs', port: 3000 }, TERMINAL, CLAUDE_CODE],
    defaultPort: 3000,
    environment: { NEXT_TELEMETRY_DISABLED: '1' },
  },
  datascience: {
    description: "Python 3 with Debian's Jupyter notebook on 8888 (no token: the gateway decides who may open it).",
    image: 'podgate/pod:datascience',
    services: [{ name: 'jupyter', port: 8888 }, TERMINAL],
    defaultPort: 8888,
    environment: PYTHON_ENV,
  },
} as const satisfies Record<string, Template>;

export type TemplateName = keyof typeof TEMPLATES;
export const TEMPLATE_NAMES = Object.keys(TEMPLATES) as [TemplateName, ...TemplateName[]];
export const DEFAULT_TEMPLATE: TemplateName = 'custom';

/** The fields of a spec a template fills; absent means "the template's". */
export interface TemplatedFields<S extends TemplateService> {
  template: TemplateName;
  image?: string | undefined;
  services?: S[] | undefined;
  defaultPort?: number | undefined;
  environment?: Record<string, string> | undefined;
}

/** The spec with the template's values where the spec has none of its own. */
export function applyTemplate<S extends TemplateService, T extends TemplatedFields<S>>(
  spec: T,
): T & { services: S[]; defaultPort: number; environment: Record<string, string> } {
  const t: Template = TEMPLATES[spec.template];
  const image = spec.image ?? t.image;
  return {
    ...spec,
    ...(image !== undefined ? { image } : {}),
    services: spec.services ?? t.services.map((s) => ({ ...s }) as S),
    defaultPort: spec.defaultPort ?? t.defaultPort,
    environment: { ...t.environment, ...spec.environment },
  };
}
