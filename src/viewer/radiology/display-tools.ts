// The mouse tools of one series display: the Cornerstone tool group of its viewports (window/level,
// pan, zoom, scroll, length, the segmentation box, crosshairs in MPR), which tool the primary
// button drives, and the crosshair probes the tests read. display.ts owns when they are called.

import type { Types } from '@cornerstonejs/core';
import {
  annotation,
  CrosshairsTool,
  Enums as ToolEnums,
  LengthTool,
  PanTool,
  RectangleROITool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
} from '@cornerstonejs/tools';

export type Layout = 'stack' | 'mpr';
export type MouseTool = 'wl' | 'pan' | 'zoom' | 'length' | 'crosshairs' | 'box';

const TOOL_NAMES: Record<MouseTool, string> = {
  wl: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  length: LengthTool.toolName,
  crosshairs: CrosshairsTool.toolName,
  box: RectangleROITool.toolName,
};

/** The tool group `groupId` over the viewports, with the secondary bindings; no primary tool yet. */
export function createToolGroup(
  groupId: string,
  engineId: string,
  layout: Layout,
  viewportIds: string[],
): void {
  const group = ToolGroupManager.createToolGroup(groupId);
  if (!group) throw new Error('tool group exists');
  const names = [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, RectangleROITool].map(
    (t) => t.toolName,
  );
  if (layout === 'mpr') names.push(CrosshairsTool.toolName);
  for (const n of names) group.addTool(n);
  // The box is a segmentation prompt, not a measurement: no statistics text box (area, mean
  // HU...) over the anatomy, and none computed (docs/radiology-viewer.md, "Segmentation").
  group.setToolConfiguration(RectangleROITool.toolName, { calculateStats: false, getTextLines: () => [] });
  for (const id of viewportIds) group.addViewport(id, engineId);
  const B = ToolEnums.MouseBindings;
  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: B.Auxiliary }] });
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: B.Secondary }] });
  group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: B.Wheel }] });
  group.setToolPassive(LengthTool.toolName);
  group.setToolPassive(RectangleROITool.toolName);
}

/** Moves the primary mouse button (and one-finger touch) from `previous` to `tool`. */
export function activateTool(groupId: string, layout: Layout, previous: MouseTool, tool: MouseTool): void {
  const group = ToolGroupManager.getToolGroup(groupId);
  if (!group) return;
  const B = ToolEnums.MouseBindings;
  const before = TOOL_NAMES[previous];
  if (before === PanTool.toolName) group.setToolActive(before, { bindings: [{ mouseButton: B.Auxiliary }] });
  else if (before === ZoomTool.toolName)
    group.setToolActive(before, { bindings: [{ mouseButton: B.Secondary }] });
  else group.setToolPassive(before);
  group.setToolActive(TOOL_NAMES[tool], { bindings: [{ mouseButton: B.Primary }] });
  if (layout === 'mpr' && tool !== 'crosshairs') {
    // While boxes are drawn the crosshair lines are shown but not grabbable (a drag on the
    // thin sagittal/coronal strips would otherwise move them instead of drawing); passive again
    // (draggable) with the other tools.
    // Only on a change of mode: each one makes Cornerstone recompute the crosshairs.
    const mode = group.getToolOptions(CrosshairsTool.toolName)?.mode;
    if (tool === 'box') {
      if (mode !== ToolEnums.ToolModes.Enabled) group.setToolEnabled(CrosshairsTool.toolName);
    } else if (mode !== ToolEnums.ToolModes.Passive) group.setToolPassive(CrosshairsTool.toolName);
  }
}

/** The Cornerstone mode of `tool` in the group (Active, Passive, Enabled, Disabled). */
export function toolModeOf(groupId: string, tool: MouseTool): string | undefined {
  return ToolGroupManager.getToolGroup(groupId)?.getToolOptions(TOOL_NAMES[tool])?.mode;
}

/** The middle of the first drag segment of viewport `viewportId`'s crosshair line (canvas pixels). */
export function crosshairGripOf(element: HTMLDivElement, viewportId: string): [number, number] | undefined {
  type Data = {
    viewportId?: string;
    handles?: { rotationPoints?: [unknown, unknown, number[], number[]][] };
  };
  const all = annotation.state.getAnnotations(CrosshairsTool.toolName, element) ?? [];
  const data = all.map((a) => a.data as Data).find((d) => d.viewportId === viewportId);
  const p = data?.handles?.rotationPoints?.[0];
  return p ? [(p[2][0] + p[3][0]) / 2, (p[2][1] + p[3][1]) / 2] : undefined;
}

/** Where the crosshair lines cross (world mm). */
export function crosshairCenterOf(groupId: string): number[] | undefined {
  const group = ToolGroupManager.getToolGroup(groupId);
  const tool = group?.getToolInstance(CrosshairsTool.toolName) as { toolCenter?: Types.Point3 } | undefined;
  return tool?.toolCenter ? [...tool.toolCenter] : undefined;
}
