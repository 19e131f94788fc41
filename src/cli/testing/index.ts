// `kvmsim/testing`: fast-check arbitraries and the VMCS-lifecycle model, so users write their
// own properties about the simulated VT-x (see docs/api.md, "Property testing").
export { controlSettingsArbitrary, controlValueArbitrary, fieldWidthBits, guestProgramArbitrary, vmcsConfigurationArbitrary } from "./arbitraries.ts"
export type { ControlSettings, FieldWrite, GuestProgram } from "./arbitraries.ts"
export {
  BAD_REVISION_REGION,
  describeMismatch,
  formatCommand,
  lifecycleFields,
  REGION_COUNT,
  runLifecycle,
  vmcsLifecycleArbitrary,
  vmcsLifecycleProperty,
  VMXON_REGION,
  VmxModel,
  VmxSubject,
  vmxCommandArbitrary,
} from "./vmcs-lifecycle.ts"
export type { LifecycleMismatch, Observed, VmxCommand } from "./vmcs-lifecycle.ts"
