// What main.ts needs of a tab: its root element is built once; show() runs each time
// the tab is opened (to refresh what it shows), hide() when another tab is.

export interface View {
  show(): void;
  hide?(): void;
}
