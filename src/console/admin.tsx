import type Router from '@koa/router';
import type { Middleware } from 'koa';

import type { PageHandler } from './page.js';

/** The administration pages (owners and admins); filled in section by section. */
export function adminPages(_router: Router, _signedIn: (handler: PageHandler) => Middleware): void {}
