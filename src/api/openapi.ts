// What the OpenAPI document says about a route beyond its input schemas: its success statuses.
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** Success statuses a route answers with, each with what it means. */
export type Successes = Partial<Record<200 | 201 | 204 | 503, string>>;

/**
 * `schema.response` documenting each success status. A body is `z.unknown()` (the zod serializer
 * encodes it unchanged, so responses are byte-for-byte what the handler sent — the shapes are
 * not described yet); 204 is `z.null()`, never run (a 204 is sent without a payload), which
 * openApiTransform turns into a response without content. Error statuses are the catalog's
 * (`{"error":{…}}`, src/errors.ts) and are not listed per route.
 */
export function successes(codes: Successes): Record<number, z.ZodType> {
  const out: Record<number, z.ZodType> = {};
  for (const [code, meaning] of Object.entries(codes)) out[Number(code)] = (code === '204' ? z.null() : z.unknown()).describe(meaning);
  return out;
}

/** The common shapes: create (201), create-or-replace (201/200), delete (204), with a dry run (200). */
export const DRY_RUN = 'dry run: the plan (nothing applied)';

/**
 * jsonSchemaTransform, then a 204 documented as having no body: zod renders `z.null()` for
 * OpenAPI 3.0 as a nullable enum, and @fastify/swagger leaves content out only for `type: 'null'`.
 */
export const openApiTransform: typeof jsonSchemaTransform = (doc) => {
  const out = jsonSchemaTransform(doc);
  const response = (out.schema as { response?: Record<string, { description?: string }> } | undefined)?.response;
  const noContent = response?.['204'];
  if (response && noContent) response['204'] = { type: 'null', description: noContent.description } as { description?: string };
  return out;
};
