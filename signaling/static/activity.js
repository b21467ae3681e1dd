// The activity log: newest first, bounded so a long session does not grow the page without limit.

export const ACTIVITY_LIMIT = 100;

export class ActivityLog {
  constructor(list, limit = ACTIVITY_LIMIT) {
    this.list = list;
    this.limit = limit;
  }

  add(text) {
    const li = document.createElement("li");
    const time = document.createElement("time");
    time.textContent = new Date().toLocaleTimeString();
    li.append(time, document.createTextNode(text));
    this.list.prepend(li);
    while (this.list.children.length > this.limit) this.list.lastElementChild.remove();
  }
}
