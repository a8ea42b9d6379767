// Body of the original service's `POST /add-record`, kept for scripts that already call it.
import { z } from 'zod';
import { DEVICE_PREFIX, deviceName } from './device.js';
import { ipv4, ownerNameInput, port, upstreamProblem } from './name.js';
import { balancingFields } from './route-balancing.js';
import { healthFields } from './route-health.js';

export const addRecordBody = z
  .object({
    service_name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'may hold letters, digits, ".", "-", "_" (max 63)'),
    name: ownerNameInput,
    ip: ipv4.optional().describe('A record target; defaults to the node IP'),
    port: port.optional().describe('Upstream port (required when proxy_enabled)'),
    forward_to_ip: z.string().optional().describe('Upstream host (IP, a name, or device:<tailnet device>); defaults to ip (with target_device: device:<target_device>)'),
    target_device: deviceName.optional().describe('A tailnet device whose IPv4 address the A record answers, following the device when it moves (instead of ip)'),
    proxy_enabled: z.boolean().default(false),
    ttl: z.number().int().min(0).max(2 ** 31 - 1).optional(),
    ...balancingFields,
    ...healthFields,
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.proxy_enabled && b.port === undefined)
      ctx.addIssue({ code: 'custom', path: ['port'], message: 'is required when proxy_enabled is true' });
    if (b.ip !== undefined && b.target_device !== undefined) ctx.addIssue({ code: 'custom', path: ['target_device'], message: 'give ip or target_device, not both' });
    if (b.forward_to_ip !== undefined) {
      const problem = upstreamProblem(`${b.forward_to_ip.includes(':') && !b.forward_to_ip.startsWith(DEVICE_PREFIX) ? `[${b.forward_to_ip}]` : b.forward_to_ip}:${b.port ?? 80}`);
      if (problem) ctx.addIssue({ code: 'custom', path: ['forward_to_ip'], message: problem.replace(/^host /, '') });
    }
  });
export type AddRecordBody = z.infer<typeof addRecordBody>;

export const removeRecordBody = z.object({ name: ownerNameInput }).strict();
