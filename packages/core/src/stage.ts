/**
 * Stages order taps across plugins (lower runs first), like webpack's PROCESS_ASSETS_STAGE_*.
 * Pass as `hook.tap({ name, stage: Stage.TRANSFORM }, fn)`.
 */
export const Stage = {
  /** access control: deny lists, limits, authentication */
  ACCESS: -200,
  /** custom resolvers that should answer before the route table */
  ROUTE: -100,
  /** header cleaning and rewriting that user taps should already see */
  NORMALIZE: -50,
  /** ordinary transformations (the default when no stage is given) */
  TRANSFORM: 0,
  /** decisions taken after transformations, such as retries */
  DECIDE: 500,
  /** the built-in route table: answers when no earlier resolver did */
  DEFAULT_ROUTES: 900,
  /** observers that must see the final value */
  OBSERVE: 1000,
} as const;
export type StageName = keyof typeof Stage;
