export { HeadersPlugin } from "./headers-plugin.js";
export type { HeadersOptions, RouteHeadersOptions } from "./options.js";
export { HOP_BY_HOP, PROTECTED, hopByHopNames, stripHopByHop, type StripOptions } from "./hop-by-hop.js";
export { forwardedFor, clientFromChain } from "./forwarded-for.js";
export { formatForwarded, formatNode, quoteIfNeeded, appendForwarded, type ForwardedElement } from "./forwarded.js";
export { viaEntry, appendVia, splitVia, viaReceivedBy, viaHasLoop } from "./via.js";
export { formatHostHeader, targetScheme, splitHost } from "./host.js";
export { applyRules, validateRules, validateRuleSet, type HeaderRules, type HeaderRuleSet } from "./rules.js";

import { HeadersPlugin } from "./headers-plugin.js";
export default HeadersPlugin;
